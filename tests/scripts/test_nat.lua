-- Offline tests of examples/nat.lua: mapping, collisions, expiry, ICMP errors, forwards.
local T = require "moontun.test"

local PUBLIC, FAR = "10.9.0.2", "10.9.0.1"
local BASE = "examples/nat.lua inside=192.168.77.0/24 public=" .. PUBLIC

local function nat(extra)
    return T.chain { BASE .. " " .. (extra or "") }
end

local function out_tcp(src, sport, flags)
    return { ip = { src = src, dst = FAR }, tcp = { sport = sport, dport = 80, flags = flags or "S" } }
end

T.test("a LAN connection leaves from public and its reply comes back", function()
    local c = nat()
    local v, b = c:egress(out_tcp("192.168.77.2", 40000))
    T.eq(v, "pass", "verdict")
    local d = T.decode(b)
    T.eq(d, { ip = { src = PUBLIC, dst = FAR }, checksums_ok = true }, "translated")
    local pub = d.tcp.sport
    assert(pub >= 20000 and pub <= 59999, "public port " .. pub .. " outside ports=")
    local v2, r = c:ingress { ip = { src = FAR, dst = PUBLIC }, tcp = { sport = 80, dport = pub, flags = "SA" } }
    T.eq(v2, "pass", "reply verdict")
    T.eq(T.decode(r), { ip = { dst = "192.168.77.2" }, tcp = { dport = 40000 }, checksums_ok = true }, "reply")
end)

T.test("a port in the range and free is kept; a collision gets the next free one", function()
    local c = nat()
    local _, a = c:egress(out_tcp("192.168.77.2", 30000))
    local _, b = c:egress(out_tcp("192.168.77.3", 30000))
    T.eq(T.decode(a).tcp.sport, 30000, "first keeps its port")
    local other = T.decode(b).tcp.sport
    assert(other ~= 30000, "second LAN host got the same public port 30000")
    local _, r = c:ingress { ip = { src = FAR, dst = PUBLIC }, tcp = { sport = 80, dport = other, flags = "SA" } }
    T.eq(T.decode(r), { ip = { dst = "192.168.77.3" }, tcp = { dport = 30000 } }, "second's reply")
end)

T.test("UDP and ICMP echo ids are mapped too", function()
    local c = nat()
    local _, u = c:egress { ip = { src = "192.168.77.2", dst = FAR }, udp = { sport = 5353, dport = 53 } }
    T.eq(T.decode(u), { ip = { src = PUBLIC }, checksums_ok = true }, "udp")
    local _, i = c:egress { ip = { src = "192.168.77.2", dst = FAR }, icmp = { type = 8, id = 7, seq = 1 } }
    local id = T.decode(i).icmp.id
    T.eq(T.decode(i), { ip = { src = PUBLIC }, checksums_ok = true }, "ping")
    local _, r = c:ingress { ip = { src = FAR, dst = PUBLIC }, icmp = { type = 0, id = id, seq = 1 } }
    T.eq(T.decode(r), { ip = { dst = "192.168.77.2" }, icmp = { id = 7 }, checksums_ok = true }, "echo reply")
end)

T.test("an idle mapping expires", function()
    local c = nat("udp_idle=60s")
    local _, u = c:egress { ip = { src = "192.168.77.2", dst = FAR }, udp = { sport = 30000, dport = 53 } }
    local pub = T.decode(u).udp.sport
    local reply = { ip = { src = FAR, dst = PUBLIC }, udp = { sport = 53, dport = pub } }
    T.advance(50)
    local _, r = c:ingress(reply)
    T.eq(T.decode(r).ip.dst, "192.168.77.2", "within 60 s")
    T.advance(62)
    _, r = c:ingress(reply)
    T.eq(T.decode(r).ip.dst, PUBLIC, "after 60 s idle: not translated")
end)

T.test("a TCP mapping ends soon after a RST", function()
    local c = nat()
    local _, a = c:egress(out_tcp("192.168.77.2", 30000))
    local pub = T.decode(a).tcp.sport
    c:egress(out_tcp("192.168.77.2", 30000, "R"))
    T.advance(12)
    local _, r = c:ingress { ip = { src = FAR, dst = PUBLIC }, tcp = { sport = 80, dport = pub, flags = "A" } }
    T.eq(T.decode(r).ip.dst, PUBLIC, "after RST + 10 s")
end)

T.test("ICMP errors about a mapped packet are translated both ways", function()
    local c = nat()
    local _, u = c:egress { ip = { src = "192.168.77.2", dst = FAR }, udp = { sport = 30000, dport = 9 } }
    local quoted = u:sub(1, 28) -- the IP header and 8 bytes: what a router quotes
    local v, r = c:ingress { ip = { src = FAR, dst = PUBLIC }, icmp = { type = 3, code = 3 }, payload = quoted }
    T.eq(v, "pass", "verdict")
    local d = T.decode(r)
    T.eq(d, { ip = { dst = "192.168.77.2" }, checksums_ok = true }, "port unreachable to the LAN host")
    local inner = T.decode(d.icmp.payload)
    T.eq(inner.ip.src, "192.168.77.2", "quoted source")
    T.eq(inner.udp.sport, 30000, "quoted port")

    -- The LAN host's own error about a forwarded packet leaves as public.
    local c2 = nat("forward=udp/5353=192.168.77.3:53")
    local _, fwd = c2:ingress { ip = { src = FAR, dst = PUBLIC }, udp = { sport = 1000, dport = 5353 } }
    local v3, e = c2:egress { ip = { src = "192.168.77.3", dst = FAR }, icmp = { type = 3, code = 3 }, payload = fwd:sub(1, 28) }
    T.eq(v3, "pass", "outgoing error verdict")
    local de = T.decode(e)
    T.eq(de, { ip = { src = PUBLIC }, checksums_ok = true }, "outgoing error")
    T.eq(T.decode(de.icmp.payload), { ip = { dst = PUBLIC }, udp = { dport = 5353 } }, "its quote")
end)

T.test("forwards send public:port to a LAN host and back", function()
    local c = nat("forward=tcp/8080=192.168.77.2:80")
    local v, b = c:ingress { ip = { src = FAR, dst = PUBLIC }, tcp = { sport = 41000, dport = 8080 } }
    T.eq(v, "pass", "verdict")
    T.eq(T.decode(b), { ip = { dst = "192.168.77.2" }, tcp = { dport = 80 }, checksums_ok = true }, "in")
    local _, r = c:egress { ip = { src = "192.168.77.2", dst = FAR }, tcp = { sport = 80, dport = 41000, flags = "SA" } }
    T.eq(T.decode(r), { ip = { src = PUBLIC }, tcp = { sport = 8080 }, checksums_ok = true }, "out")
    T.advance(3 * 3600) -- a forward never expires
    _, b = c:ingress { ip = { src = FAR, dst = PUBLIC }, tcp = { sport = 41001, dport = 8080 } }
    T.eq(T.decode(b).ip.dst, "192.168.77.2", "hours later")
end)

T.test("this host's own ports are kept from the LAN", function()
    local c = nat()
    T.eq(c:egress { ip = { src = PUBLIC, dst = FAR }, tcp = { sport = 30000, dport = 22 } }, "pass", "ours")
    local _, b = c:egress(out_tcp("192.168.77.2", 30000))
    assert(T.decode(b).tcp.sport ~= 30000, "the LAN host took this host's port 30000")
    local _, r = c:ingress { ip = { src = FAR, dst = PUBLIC }, tcp = { sport = 22, dport = 30000, flags = "SA" } }
    T.eq(T.decode(r).ip.dst, PUBLIC, "our reply stays ours")
end)

T.test("a full range drops with a warning; other protocols from inside drop; IPv6 passes", function()
    local c = nat("ports=20000-20001")
    T.eq(c:egress(out_tcp("192.168.77.2", 20000)), "pass", "first")
    T.eq(c:egress(out_tcp("192.168.77.3", 20000)), "pass", "second")
    T.eq(c:egress(out_tcp("192.168.77.4", 20000)), "drop", "third: range full")
    T.like(T.logs(), "no free public port", "warning")
    T.eq(c:egress { ip = { src = "192.168.77.2", dst = FAR, proto = 47 }, payload = 8 }, "drop", "GRE from inside")
    local v6 = T.packet { ip = { src = "fd77::2", dst = "fd09::1" }, tcp = { sport = 1 } }
    local v, b = c:egress(v6)
    T.eq(v, "pass", "IPv6")
    T.eq(b, v6, "IPv6 untouched")
end)

T.test("mappings survive a reload", function()
    local c = nat()
    local _, a = c:egress(out_tcp("192.168.77.2", 40000))
    local pub = T.decode(a).tcp.sport
    assert(c:reload())
    local _, r = c:ingress { ip = { src = FAR, dst = PUBLIC }, tcp = { sport = 80, dport = pub, flags = "SA" } }
    T.eq(T.decode(r), { ip = { dst = "192.168.77.2" }, tcp = { dport = 40000 } }, "after reload")
end)

T.test("bad settings and tap mode stop loading", function()
    for _, bad in ipairs { "inside=fd00::/8 public=10.9.0.2", "inside=192.168.77.0/24 public=fd00::1",
        "inside=192.168.77.0/24 public=10.9.0.2 ports=9-1",
        "inside=192.168.77.0/24 public=10.9.0.2 forward=tcp/80=10.1.1.1:80", "public=10.9.0.2" } do
        local ok, err = pcall(T.chain, { "examples/nat.lua " .. bad })
        T.eq(ok, false, bad .. " loads")
        T.like(err, "nat.lua", bad)
    end
    local ok, err = pcall(T.chain, { BASE, tap = true })
    T.eq(ok, false, "tap loads")
    T.like(err, "tun", "tap error")
end)
