-- Offline tests of examples/dns_sinkhole.lua: NXDOMAIN for blocked names and their subdomains.
local T = require "moontun.test"

local function qname(name)
    local s = ""
    for label in (name .. "."):gmatch("(.-)%.") do
        s = s .. string.char(#label) .. label
    end
    return s .. "\0"
end

-- A DNS query: id 0x1234, RD set, one question (name, type, class IN), then extra bytes.
local function query(name, qtype, opts)
    opts = opts or {}
    local dns = string.pack(">I2I2I2I2I2I2", 0x1234, opts.flags or 0x0100, opts.qd or 1, 0, 0, opts.ar or 0)
        .. (opts.raw_name or qname(name)) .. string.pack(">I2I2", qtype or 1, 1) .. (opts.extra or "")
    return { ip = { src = opts.src or "10.9.0.2", dst = opts.dst or "10.9.0.53" }, udp = { sport = 40000, dport = 53 }, payload = dns }
end

local function sinkhole()
    return T.chain { "examples/dns_sinkhole.lua block=ads.example,Tracker.Test" }
end

T.test("a blocked A query is answered NXDOMAIN in place", function()
    local c = sinkhole()
    local v, b = c:egress(query("ads.example", 1))
    T.eq(v, "reply", "verdict")
    local d = T.decode(b)
    T.eq(d, { ip = { src = "10.9.0.53", dst = "10.9.0.2" }, udp = { sport = 53, dport = 40000 }, checksums_ok = true }, "reply")
    local id, flags, qd, an, ns, ar = string.unpack(">I2I2I2I2I2I2", d.udp.payload)
    T.eq({ id, flags, qd, an, ns, ar }, { 0x1234, 0x8183, 1, 0, 0, 0 }, "header (QR RD RA, NXDOMAIN)")
    T.eq(d.udp.payload:sub(13), qname("ads.example") .. string.pack(">I2I2", 1, 1), "question kept")
    T.eq(d.udp.len, 8 + #d.udp.payload, "UDP length")
end)

T.test("subdomains, AAAA, case and IPv6 are covered; look-alikes are not", function()
    local c = sinkhole()
    T.eq(c:egress(query("x.y.ads.example", 1)), "reply", "subdomain")
    T.eq(c:egress(query("ADS.Example", 28)), "reply", "AAAA, upper case")
    T.eq(c:egress(query("tracker.test", 1)), "reply", "second name, set in upper case")
    T.eq(c:egress(query("ads.example", 1, { src = "fd09::2", dst = "fd09::53" })), "reply", "over IPv6")
    T.eq(c:egress(query("badads.example", 1)), "pass", "look-alike")
    T.eq(c:egress(query("example", 1)), "pass", "parent")
    T.eq(c:egress(query("ads.example", 15)), "pass", "MX is not sunk")
end)

T.test("an EDNS record after the question is dropped from the answer", function()
    local c = sinkhole()
    local opt = "\0" .. string.pack(">I2I2I4I2", 41, 1232, 0, 0)
    local v, b = c:egress(query("ads.example", 1, { ar = 1, extra = opt }))
    T.eq(v, "reply", "verdict")
    T.eq(#T.decode(b).udp.payload, 12 + #qname("ads.example") + 4, "answer length")
end)

T.test("what it cannot parse passes untouched", function()
    local c = sinkhole()
    local cases = {
        { "two questions", query("ads.example", 1, { qd = 2 }) },
        { "a response", query("ads.example", 1, { flags = 0x8180 }) },
        { "compressed name", query("x", 1, { raw_name = "\3ads\192\12" }) },
        { "label past the end", query("x", 1, { raw_name = "\63ads" }) },
        { "truncated header", { ip = {}, udp = { dport = 53 }, payload = "\0\1\2" } },
        { "not port 53", { ip = {}, udp = { dport = 5353 }, payload = "x" } },
    }
    for _, case in ipairs(cases) do
        local pkt = T.packet(case[2])
        local v, b = c:egress(pkt)
        T.eq(v, "pass", case[1])
        T.eq(b, pkt, case[1] .. " bytes")
    end
    T.eq(c:ingress(query("ads.example", 1)), "pass", "ingress is not looked at")
end)

T.test("tap mode swaps the MACs", function()
    local c = T.chain { "examples/dns_sinkhole.lua block=ads.example", tap = true }
    local q = query("ads.example", 1)
    q.eth = { src = "02:00:00:00:00:02", dst = "02:00:00:00:00:01" }
    local v, b = c:egress(q)
    T.eq(v, "reply", "verdict")
    T.eq(T.decode(b, true), { eth = { src = "02:00:00:00:00:01", dst = "02:00:00:00:00:02" }, checksums_ok = true }, "frame")
end)

T.test("bad settings stop loading", function()
    for _, bad in ipairs { "", "block=", "block=bad_name!.com", "block=a..b" } do
        local ok, err = pcall(T.chain, { "examples/dns_sinkhole.lua " .. bad })
        T.eq(ok, false, "'" .. bad .. "' loads")
        T.like(err, "block", bad)
    end
end)
