-- Offline tests of examples/icmp_responder.lua: echo replies for phantom addresses, both ways.
local T = require "moontun.test"

local function responder(s)
    return T.chain { "examples/icmp_responder.lua " .. (s or "addr=10.9.0.77,fd09::77,10.77.0.0/24") }
end

T.test("a ping for a phantom address is answered, from both sides", function()
    local c = responder()
    local ping = T.packet { ip = { src = "10.9.0.2", dst = "10.9.0.77", ttl = 3 }, icmp = { type = 8, id = 9, seq = 4 }, payload = "abcdefgh" }
    for _, dir in ipairs { "egress", "ingress" } do
        local v, b = c[dir](c, ping)
        T.eq(v, "reply", dir .. " verdict")
        T.eq(T.decode(b), { ip = { src = "10.9.0.77", dst = "10.9.0.2", ttl = 64 },
            icmp = { type = 0, code = 0, id = 9, seq = 4, payload = "abcdefgh" }, checksums_ok = true }, dir .. " reply")
    end
    T.eq(c:egress { ip = { dst = "10.77.0.200" }, icmp = { type = 8 } }, "reply", "inside a prefix")
end)

T.test("ICMPv6 echo is answered with a correct checksum", function()
    local c = responder()
    local v, b = c:ingress { ip = { src = "fd09::2", dst = "fd09::77" }, icmp = { type = 128, id = 1, seq = 2 } }
    T.eq(v, "reply", "verdict")
    T.eq(T.decode(b), { ip = { src = "fd09::77", dst = "fd09::2" }, icmp = { type = 129, id = 1, seq = 2 }, checksums_ok = true }, "reply")
end)

T.test("everything else passes untouched", function()
    local c = responder("addr=10.9.0.77 ttl=32")
    for name, spec in pairs {
        ["a real address"] = { ip = { dst = "10.9.0.1" }, icmp = { type = 8 } },
        ["an echo reply"] = { ip = { dst = "10.9.0.77" }, icmp = { type = 0 } },
        ["code 1"] = { ip = { dst = "10.9.0.77" }, icmp = { type = 8, code = 1 } },
        ["TCP to it"] = { ip = { dst = "10.9.0.77" }, tcp = {} },
        ["IPv6 not listed"] = { ip = { dst = "fd09::77" }, icmp = { type = 128 } },
    } do
        local p = T.packet(spec)
        local v, b = c:egress(p)
        T.eq(v, "pass", name)
        T.eq(b, p, name .. " bytes")
    end
    local _, b = c:egress { ip = { dst = "10.9.0.77" }, icmp = { type = 8 } }
    T.eq(T.decode(b).ip.ttl, 32, "ttl=32")
end)

T.test("tap mode swaps the MACs", function()
    local c = T.chain { "examples/icmp_responder.lua addr=10.9.0.77", tap = true }
    local v, b = c:ingress { eth = { src = "02:00:00:00:00:02", dst = "02:00:00:00:00:77" }, ip = { dst = "10.9.0.77" }, icmp = { type = 8 } }
    T.eq(v, "reply", "verdict")
    T.eq(T.decode(b, true).eth, { src = "02:00:00:00:00:77", dst = "02:00:00:00:00:02" }, "MACs")
end)

T.test("bad settings stop loading", function()
    for _, bad in ipairs { "", "addr=nowhere", "addr=10.9.0.77 ttl=0", "addr=10.9.0.77 ttl=300" } do
        local ok, err = pcall(T.chain, { "examples/icmp_responder.lua " .. bad })
        T.eq(ok, false, "'" .. bad .. "' loads")
        T.like(err, "icmp_responder.lua", bad)
    end
end)
