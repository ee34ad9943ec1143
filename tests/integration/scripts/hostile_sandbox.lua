-- Every attack on the sandbox contract that the review found, each triggered by one UDP
-- packet from the peer (ingress) to the port in brackets. Each must end within --lua-time,
-- counted and logged, while other traffic flows. Everything else passes untouched.
local mt = require "moontun"
local big1, big2, killed
-- The numbers to sort: 1,000 here, doubled by table.move on packets to port 36 until there
-- are 2M (each call moves what it can in its bound; what it moved stays).
local sorted = {}
for i = 1, 1000 do
    sorted[i] = (i * 7919) % 1000
end

local piece = ("x = 1 "):rep(1e6 // 6)

local function spin()
    while true do
    end
end

local attacks = {
    -- C library calls no count hook sees
    [20] = function() -- pattern backtracking
        return ("a"):rep(200):find(("a-"):rep(5) .. "b")
    end,
    [21] = function()
        table.move({}, 1, math.maxinteger - 1, 1)
    end,
    [22] = function()
        table.remove(setmetatable({}, { __len = function() return 1 << 27 end }), 1)
    end,
    [23] = function() -- 0.2-1 ms per instruction: 1,000 of them between two count hooks
        big1 = big1 or ("x"):rep(4e6)
        big2 = big2 or ("x"):rep(4e6 - 1) .. "x"
        while true do
            local _ = big1 == big2
        end
    end,
    [24] = function()
        big1, big2 = nil, nil -- the heap the collector walks: as small as the test allows
        local t = {}
        for i = 1, 1e5 do
            t[i] = {}
        end
        while true do
            collectgarbage()
        end
    end,
    [25] = function() -- 20 MB of source, in 1 MB pieces
        local n = 0
        local f, err = load(function()
            n = n + 1
            return n <= 20 and piece or nil
        end)
        assert(f, err)
    end,
    [26] = function()
        table.sort(sorted)
    end,
    [37] = function() -- done with the big table: the collector walks less from here on
        sorted = {}
        collectgarbage()
    end,
    -- Lua code that would run with hooks off
    [27] = function()
        setmetatable({}, { __gc = spin })
        collectgarbage()
    end,
    [28] = function()
        xpcall(spin, spin)
    end,
    [29] = function()
        coroutine.wrap(function()
            local x <close> = setmetatable({}, { __close = spin })
            spin()
        end)()
    end,
    -- a SIGSEGV in Lua 5.4.4
    [30] = function()
        local prev
        for _ = 1, 20000 do
            local p = prev
            local co = coroutine.create(function()
                local x <close> = setmetatable({}, { __close = function()
                    if p then coroutine.close(p) end
                end })
                coroutine.yield()
            end)
            coroutine.resume(co)
            prev = co
        end
        coroutine.close(prev)
        error("20000 nested closes survived")
    end,
    -- the budget's own cost: deep recursion
    [31] = function()
        local function f(n)
            if n == 0 then spin() end
            return 1 + f(n - 1)
        end
        return f(40000)
    end,
    -- budgets multiply: timers
    [32] = function()
        for _ = 1, 3000 do
            mt.every(0.01, spin)
        end
    end,
    -- a shared, mutable world
    [33] = function()
        mt.DROP = nil
        require("moontun").DROP = nil
        string.rep = function() return "no" end
        string.find = nil
        local smt = getmetatable("")
        if type(smt) == "table" then
            smt.__index = { rep = function() return "no" end }
        end
        load("string.find = nil")()
    end,
    -- logs
    [34] = function()
        for i = 1, 20000 do
            print("flood", i)
            mt.log("flood %d", i)
            warn("flood")
        end
    end,
    [35] = function()
        return #string.rep("", 1 << 62)
    end,
    [36] = function()
        local n = #sorted
        table.move(sorted, 1, math.min(n, 2e6 - n), n + 1)
        mt.log("sorted has %d", #sorted)
    end,
}

return {
    ingress = function(pkt)
        local udp = pkt.udp
        local f = udp and attacks[udp.dport]
        if f then
            f()
        end
    end,
}
