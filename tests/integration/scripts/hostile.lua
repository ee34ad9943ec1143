-- Misbehaves on purpose, chosen by the UDP destination port of an egress packet:
--   9 spins (inside its own pcall)   10 memory bomb     11 deep recursion
--  12 huge string building          13 absurd resizes   14 errors every time
--  15 keeps the packet and touches it from a timer later
-- Everything else passes untouched.
local mt = require "moontun"
local stash

local evil = {
    [9] = function()
        pcall(function()
            while true do end
        end)
    end,
    [10] = function()
        local t = {}
        while true do
            t[#t + 1] = string.rep("x", 1000000) .. #t
        end
    end,
    [11] = function()
        local function deeper(n)
            return deeper(n + 1) + 1
        end
        return deeper(1)
    end,
    [12] = function()
        local s = "moontun"
        for _ = 1, 40 do
            s = s .. s
        end
        return #s
    end,
    [13] = function(pkt)
        for _, n in ipairs({ 1e12, -1, 70000, 2 ^ 53, 1e300 }) do
            local ok, err = pcall(pkt.resize, pkt, n)
            assert(not ok, "resize to " .. tostring(n) .. " succeeded")
        end
        error("absurd resizes all refused")
    end,
    [14] = function()
        error("boom on every packet")
    end,
    [15] = function(pkt)
        stash = pkt
        mt.after(0.05, function()
            local ok, err = pcall(function()
                return #stash
            end)
            mt.log("stashed packet later: %s", ok and "still readable!" or err)
        end)
    end,
}

return {
    egress = function(pkt)
        local udp = pkt.udp
        local f = udp and evil[udp.dport]
        if f then
            return f(pkt)
        end
    end,
}
