-- Offline tests of examples/flowlog.lua: the top-N table every interval, idle flows end.
local T = require "moontun.test"

local function flow(sport, size)
    return { ip = { src = "10.9.0.2", dst = "10.9.0.1" }, tcp = { sport = sport, dport = 5201, flags = "A" }, payload = size - 40 }
end

T.test("every interval, the top flows by bytes; packets pass untouched", function()
    local c = T.chain { "examples/flowlog.lua interval=5s top=2" }
    local p = T.packet(flow(1000, 1000))
    for _ = 1, 3 do
        local v, b = c:egress(p)
        T.eq(v, "pass", "verdict")
        T.eq(b, p, "bytes")
    end
    c:egress(flow(2000, 500))
    c:ingress(flow(3000, 100))
    T.logs()
    T.advance(5)
    local lines = T.logs()
    T.like(lines, "3 flows, 3600 bytes in the last 5s; top 2 by bytes:", "table head")
    T.like(lines, "tcp    10%.9%.0%.2:1000 +10%.9%.0%.1:5201 +3 +3000 +4%.8", "first row")
    T.like(lines, "10%.9%.0%.2:2000 .* 500 ", "second row")
    for _, l in ipairs(lines) do
        assert(not l:find(":3000", 1, true), "third flow listed with top=2: " .. l)
    end
end)

T.test("quiet periods log nothing; an idle flow that was shown ends with a line", function()
    local c = T.chain { "examples/flowlog.lua interval=1s idle=3s" }
    T.advance(5)
    T.eq(T.logs(), {}, "nothing without flows")
    c:egress(flow(1000, 100))
    T.advance(1)
    T.like(T.logs(), "1 flows", "shown")
    T.advance(4)
    T.like(T.logs(), "ended %(idle%) tcp 10%.9%.0%.2:1000 > 10%.9%.0%.1:5201: 1 packets, 100 bytes", "ended")
end)

T.test("dir= and max= choose what is counted", function()
    local c = T.chain { "examples/flowlog.lua interval=1s dir=ingress max=1" }
    c:egress(flow(1, 100))
    c:ingress(flow(2, 100))
    c:ingress(flow(3, 100))
    T.advance(1)
    local lines = T.logs()
    T.like(lines, "1 flows, 100 bytes in the last 1s %(1 packets untracked so far, max=1%)", "head")
end)

T.test("bad settings stop loading", function()
    for _, bad in ipairs { "interval=0", "top=0", "idle=x", "dir=sideways", "max=-1" } do
        local ok, err = pcall(T.chain, { "examples/flowlog.lua " .. bad })
        T.eq(ok, false, bad .. " loads")
        T.like(err, bad:match("^%a+"), bad)
    end
end)
