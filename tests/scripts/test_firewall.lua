-- Offline tests of examples/firewall.lua: what its header promises, packet by packet.
local T = require "moontun.test"

local ME, PEER = "10.9.0.1", "10.9.0.2"

local function fw(settings)
    return T.chain { "examples/firewall.lua " .. (settings or "allow=tcp/22,udp/53,icmp") }
end

-- A packet from the tunnel side to this host, and one from this host into the tunnel.
local function inbound(l4, extra)
    local p = { ip = { src = PEER, dst = ME } }
    for k, v in pairs(l4) do p[k] = v end
    for k, v in pairs(extra or {}) do p[k] = v end
    return p
end
local function outbound(l4)
    local p = { ip = { src = ME, dst = PEER } }
    for k, v in pairs(l4) do p[k] = v end
    return p
end

T.test("allowed services start from the tunnel, per protocol", function()
    local c = fw()
    T.eq(c:ingress(inbound { tcp = { sport = 40000, dport = 22, flags = "S" } }), "pass", "tcp/22 SYN")
    T.eq(c:ingress(inbound { udp = { sport = 5000, dport = 53 } }), "pass", "udp/53")
    T.eq(c:ingress(inbound { icmp = { type = 8, id = 7, seq = 1 } }), "pass", "ping")
    T.eq(c:ingress { ip = { src = "fd09::2", dst = "fd09::1" }, tcp = { dport = 22 } }, "pass", "IPv6 tcp/22")
    T.eq(c:ingress { ip = { src = "fd09::2", dst = "fd09::1" }, icmp = { type = 128 } }, "pass", "IPv6 ping")
end)

T.test("refused services are dropped, per protocol", function()
    local c = fw()
    T.eq(c:ingress(inbound { tcp = { dport = 23, flags = "S" } }), "drop", "tcp/23 SYN")
    T.eq(c:ingress(inbound { udp = { dport = 54 } }), "drop", "udp/54")
    T.eq(c:ingress { ip = { src = "fd09::2", dst = "fd09::1" }, udp = { dport = 123 } }, "drop", "IPv6 udp/123")
    local noicmp = fw("allow=tcp/22")
    T.eq(noicmp:ingress(inbound { icmp = { type = 8, id = 1 } }), "drop", "ping without allow=icmp")
end)

T.test("port ranges", function()
    local c = fw("allow=tcp/8000-8010")
    T.eq(c:ingress(inbound { tcp = { dport = 8000 } }), "pass", "low end")
    T.eq(c:ingress(inbound { tcp = { dport = 8010 } }), "pass", "high end")
    T.eq(c:ingress(inbound { tcp = { dport = 8011 } }), "drop", "past the range")
end)

T.test("a TCP packet that is not a SYN cannot start a connection", function()
    local c = fw()
    T.eq(c:ingress(inbound { tcp = { dport = 22, flags = "A" } }), "drop", "bare ACK to tcp/22")
    T.eq(c:ingress(inbound { tcp = { dport = 22, flags = "SA" } }), "drop", "SYN-ACK to tcp/22")
end)

T.test("replies to what this host started come back in", function()
    local c = fw("allow=icmp")
    T.eq(c:egress(outbound { tcp = { sport = 50000, dport = 80, flags = "S" } }), "pass", "our SYN")
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50000, flags = "SA" } }), "pass", "their SYN-ACK")
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50001, flags = "SA" } }), "drop", "another port")
    T.eq(c:egress(outbound { udp = { sport = 5353, dport = 53 } }), "pass", "our query")
    T.eq(c:ingress(inbound { udp = { sport = 53, dport = 5353 } }), "pass", "the answer")
    T.eq(c:egress(outbound { icmp = { type = 8, id = 99 } }), "pass", "our ping")
    T.eq(c:ingress(inbound { icmp = { type = 0, id = 99 } }), "pass", "its echo reply")
end)

T.test("reject=1 answers a refused SYN with RST|ACK", function()
    local c = fw("allow=tcp/22 reject=1")
    local v, bytes = c:ingress(inbound { tcp = { sport = 40001, dport = 23, flags = "S", seq = 1000, mss = 1460 } })
    T.eq(v, "reply", "verdict")
    T.eq(T.decode(bytes), {
        ip = { src = ME, dst = PEER, len = 40, ttl = 64 },
        tcp = { sport = 23, dport = 40001, flags = "RA", ack = 1001, seq = 0, hlen = 20, payload = "" },
        checksums_ok = true,
    }, "the RST")
    local v6, b6 = c:ingress { ip = { src = "fd09::2", dst = "fd09::1" }, tcp = { sport = 1, dport = 25, seq = 5 } }
    T.eq(v6, "reply", "IPv6 verdict")
    T.eq(T.decode(b6), { ip = { src = "fd09::1", dst = "fd09::2", len = 20 }, tcp = { flags = "RA", ack = 6 }, checksums_ok = true }, "IPv6 RST")
    T.eq(c:ingress(inbound { udp = { dport = 23 } }), "drop", "UDP is dropped, not answered")
end)

T.test("a FIN or RST closes a connection after the linger time", function()
    local c = fw("allow=icmp linger=10s")
    c:egress(outbound { tcp = { sport = 50000, dport = 80, flags = "S" } })
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50000, flags = "SA" } }), "pass", "open")
    c:egress(outbound { tcp = { sport = 50000, dport = 80, flags = "FA" } })
    T.advance(5)
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50000, flags = "A" } }), "pass", "last ACK while lingering")
    T.advance(11)
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50000, flags = "A" } }), "drop", "after the linger")

    c:egress(outbound { tcp = { sport = 50001, dport = 80, flags = "S" } })
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50001, flags = "R" } }), "pass", "their RST")
    T.advance(12)
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50001, flags = "A" } }), "drop", "gone after RST")
end)

T.test("idle connections expire by their timeout", function()
    local c = fw("allow=icmp timeout_udp=30 timeout_tcp=300")
    c:egress(outbound { udp = { sport = 5353, dport = 53 } })
    c:egress(outbound { tcp = { sport = 50000, dport = 80, flags = "S" } })
    T.advance(25)
    T.eq(c:ingress(inbound { udp = { sport = 53, dport = 5353 } }), "pass", "udp within 30 s")
    T.advance(31) -- the answer refreshed it: 31 s of quiet now
    T.eq(c:ingress(inbound { udp = { sport = 53, dport = 5353 } }), "drop", "udp after 30 s idle")
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50000, flags = "SA" } }), "pass", "tcp within 300 s")
    T.advance(301)
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50000, flags = "A" } }), "drop", "tcp after 300 s idle")
end)

T.test("ICMP errors, neighbour discovery, later fragments and non-IP always pass", function()
    local c = fw("allow=tcp/22")
    local quoted = T.packet { ip = { src = ME, dst = PEER }, udp = { sport = 1, dport = 2 } }:sub(1, 28)
    T.eq(c:ingress(inbound({ icmp = { type = 3, code = 3 } }, { payload = quoted })), "pass", "port unreachable")
    T.eq(c:ingress(inbound({ icmp = { type = 11 } }, { payload = quoted })), "pass", "time exceeded")
    T.eq(c:ingress { ip = { src = "fe80::2", dst = "ff02::1" }, icmp = { type = 135 } }, "pass", "neighbour solicitation")
    T.eq(c:ingress { ip = { src = PEER, dst = ME, frag = 1480, proto = 17 }, payload = 100 }, "pass", "a later fragment")
end)

T.test("other IP protocols are tracked like UDP: only this host may start them", function()
    local c = fw("allow=tcp/22")
    local gre_in = { ip = { src = PEER, dst = ME, proto = 47 }, payload = 20 }
    T.eq(c:ingress(gre_in), "drop", "GRE from the tunnel first")
    T.eq(c:egress { ip = { src = ME, dst = PEER, proto = 47 }, payload = 20 }, "pass", "GRE from us")
    T.eq(c:ingress(gre_in), "pass", "GRE back")
end)

T.test("tap mode: Ethernet frames, ARP passes, the RST goes back to the sender's MAC", function()
    local c = T.chain { "examples/firewall.lua allow=tcp/22 reject=1", tap = true }
    local eth = { src = "02:00:00:00:00:02", dst = "02:00:00:00:00:01" }
    T.eq(c:ingress { eth = { type = 0x0806 }, payload = 28 }, "pass", "ARP")
    T.eq(c:ingress { eth = eth, ip = { src = PEER, dst = ME }, tcp = { dport = 22 } }, "pass", "tcp/22")
    local v, b = c:ingress { eth = eth, ip = { src = PEER, dst = ME }, tcp = { dport = 23 } }
    T.eq(v, "reply", "tcp/23")
    T.eq(T.decode(b, true), { eth = { dst = "02:00:00:00:00:02", src = "02:00:00:00:00:01" }, tcp = { flags = "RA" }, checksums_ok = true }, "RST frame")
end)

T.test("bad settings stop loading with a line naming the setting", function()
    for _, bad in ipairs { "allow=tcp/0", "allow=tcp/70000", "allow=sctp/1", "allow=tcp/9-1", "reject=maybe", "timeout_tcp=soon", "nope=1" } do
        local ok, err = pcall(T.chain, { "examples/firewall.lua " .. bad })
        T.eq(ok, false, bad .. " loads")
        T.like(err, bad:match("^[%a_]+"), bad .. " error")
    end
end)

T.test("a reload keeps the connections, with the time each had left", function()
    local c = fw("allow=icmp timeout_udp=30 max=1024") -- small: two loads fit the test's 50 ms under ASan
    c:egress(outbound { udp = { sport = 5353, dport = 53 } })
    c:egress(outbound { tcp = { sport = 50000, dport = 80, flags = "S" } })
    T.advance(20)
    assert(c:reload())
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50000, flags = "SA" } }), "pass", "TCP reply after reload")
    T.eq(c:ingress(inbound { udp = { sport = 53, dport = 5353 } }), "pass", "UDP reply after reload")
    T.advance(31)
    T.eq(c:ingress(inbound { udp = { sport = 53, dport = 5353 } }), "drop", "UDP idle past its timeout")
    T.eq(c:ingress(inbound { tcp = { sport = 80, dport = 50000, flags = "A" } }), "pass", "TCP still there")
end)
