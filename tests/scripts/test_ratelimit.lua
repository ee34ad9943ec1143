-- Offline tests of examples/ratelimit.lua: a token bucket per source, refilled with time.
local T = require "moontun.test"

-- 1000-byte packets from src; rate 8kbit = 1000 bytes/s, burst 2000 bytes.
local function pkt(src)
    src = src or "10.9.0.2"
    local v6 = src:find(":", 1, true)
    return { ip = { src = src, dst = v6 and "fd09::1" or "10.9.0.1" }, udp = {}, payload = 1000 - (v6 and 48 or 28) }
end

local function limiter(s)
    return T.chain { "examples/ratelimit.lua rate=8kbit burst=2000 " .. (s or "") }
end

T.test("a source gets its burst, then drops until the bucket refills", function()
    local c = limiter()
    T.eq(c:ingress(pkt()), "pass", "1st (2000 -> 1000 left)")
    T.eq(c:ingress(pkt()), "pass", "2nd (1000 -> 0)")
    T.eq(c:ingress(pkt()), "drop", "3rd: no credit")
    T.advance(0.5)
    T.eq(c:ingress(pkt()), "pass", "after 0.5 s: 500 bytes of credit")
    T.eq(c:ingress(pkt()), "drop", "in debt again")
    T.advance(10)
    T.eq(c:ingress(pkt()), "pass", "a full bucket after a quiet while")
    T.eq(c:ingress(pkt()), "pass", "and its burst")
end)

T.test("each source has its own bucket; limit= and dir= choose who is policed", function()
    local c = limiter()
    c:ingress(pkt("10.9.0.2")); c:ingress(pkt("10.9.0.2"))
    T.eq(c:ingress(pkt("10.9.0.2")), "drop", "first source spent")
    T.eq(c:ingress(pkt("10.9.0.3")), "pass", "second source")
    T.eq(c:ingress(pkt("fd09::3")), "pass", "IPv6 source")
    for _ = 1, 5 do
        T.eq(c:egress(pkt("10.9.0.2")), "pass", "egress is not policed by default")
    end

    local only = limiter("limit=10.9.0.0/30")
    for _ = 1, 3 do only:ingress(pkt("10.9.0.9")) end
    T.eq(only:ingress(pkt("10.9.0.9")), "pass", "outside limit=")
    for _ = 1, 2 do only:ingress(pkt("10.9.0.2")) end
    T.eq(only:ingress(pkt("10.9.0.2")), "drop", "inside limit=")

    local both = limiter("dir=both")
    both:egress(pkt()); both:ingress(pkt())
    T.eq(both:egress(pkt()), "drop", "dir=both shares the source's bucket")
end)

T.test("a packet larger than the burst passes once and puts the source in debt", function()
    local c = limiter()
    T.eq(c:ingress { ip = { src = "10.9.0.5" }, udp = {}, payload = 5000 }, "pass", "the big one")
    T.advance(2)
    T.eq(c:ingress(pkt("10.9.0.5")), "drop", "still in debt after 2 s")
    T.advance(2)
    T.eq(c:ingress(pkt("10.9.0.5")), "pass", "debt paid")
end)

T.test("bad settings stop loading", function()
    for _, bad in ipairs { "rate=0", "rate=fast", "burst=-1", "dir=up", "limit=nowhere" } do
        local ok, err = pcall(T.chain, { "examples/ratelimit.lua " .. bad })
        T.eq(ok, false, bad .. " loads")
        T.like(err, bad:match("^%a+"), bad)
    end
end)
