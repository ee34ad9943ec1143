-- Offline tests of examples/mss_clamp.lua: the MSS option of SYNs lowered both ways.
local T = require "moontun.test"

local function clamp(s)
    return T.chain { "examples/mss_clamp.lua " .. (s or "mss=1200") }
end

T.test("a SYN's MSS above the setting is lowered, both ways, IPv4 and IPv6", function()
    local c = clamp()
    for _, dir in ipairs { "egress", "ingress" } do
        for _, ip in ipairs { { src = "10.9.0.2", dst = "10.9.0.1" }, { src = "fd09::2", dst = "fd09::1" } } do
            local v, b = c[dir](c, { ip = ip, tcp = { flags = "S", mss = 1460, options = "\1\1\4\2" } })
            T.eq(v, "pass", dir .. " verdict")
            T.eq(T.decode(b), { tcp = { mss = 1200, hlen = 28 }, checksums_ok = true }, dir .. " " .. ip.src)
        end
    end
    local _, sa = c:ingress { ip = {}, tcp = { flags = "SA", options = "\1\1\1\2\4\5\180" } }
    T.eq(T.decode(sa), { tcp = { mss = 1200 }, checksums_ok = true }, "SYN-ACK after NOPs")
end)

T.test("what needs no clamping is left alone", function()
    local c = clamp()
    for name, spec in pairs {
        ["MSS at the setting"] = { ip = {}, tcp = { flags = "S", mss = 1200 } },
        ["MSS below"] = { ip = {}, tcp = { flags = "S", mss = 536 } },
        ["no MSS option"] = { ip = {}, tcp = { flags = "S", options = "\1\1\1\0" } },
        ["not a SYN"] = { ip = {}, tcp = { flags = "A", mss = 1460 } },
        ["UDP"] = { ip = {}, udp = {}, payload = "\2\4\5\180" },
        ["an option with length 0 (a liar)"] = { ip = {}, tcp = { flags = "S", options = "\3\0\2\4\5\180\0\0" } },
        ["an option past the header"] = { ip = {}, tcp = { flags = "S", options = "\1\1\3\9" } },
    } do
        local p = T.packet(spec)
        local v, b = c:egress(p)
        T.eq(v, "pass", name)
        T.eq(b, p, name .. " bytes")
    end
end)

T.test("tap mode finds the TCP header after Ethernet", function()
    local c = T.chain { "examples/mss_clamp.lua mss=1300", tap = true }
    local _, b = c:egress { eth = {}, ip = {}, tcp = { flags = "S", mss = 1460 } }
    T.eq(T.decode(b, true), { tcp = { mss = 1300 }, checksums_ok = true }, "clamped")
end)

T.test("bad settings stop loading", function()
    for _, bad in ipairs { "mss=100", "mss=70000", "mss=big" } do
        local ok, err = pcall(T.chain, { "examples/mss_clamp.lua " .. bad })
        T.eq(ok, false, bad .. " loads")
        T.like(err, "mss", bad)
    end
end)
