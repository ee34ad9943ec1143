-- Offline tests of examples/netem.lua: delay, order, loss and the limit, on the virtual clock.
local T = require "moontun.test"

local server = T.peer { addr = "192.0.2.1:55555", name = "server" } -- mt.peers() lists it

local function pkt(n, dst)
    return T.packet { ip = { src = "10.9.0.2", dst = dst or "10.9.0.1", id = n }, udp = {}, payload = "packet " .. n }
end

T.test("egress packets leave late, by mt.send to the peer, unchanged", function()
    local c = T.chain { "examples/netem.lua delay=50ms" }
    T.like(T.logs(), "delay 50ms", "start line")
    T.eq(c:egress(pkt(1)), "drop", "taken off the fast path")
    T.advance(0.049)
    T.eq(#c:sent(), 0, "sent before 50 ms")
    T.advance(0.002)
    local sent = c:sent()
    T.eq(#sent, 1, "sent after 50 ms")
    T.eq(sent[1].peer, server, "to the peer")
    T.eq(sent[1].bytes, pkt(1), "bytes")
end)

T.test("jitter never reorders", function()
    local c = T.chain { "examples/netem.lua delay=20ms jitter=15ms" }
    for i = 1, 50 do
        c:egress(pkt(i))
        T.advance(0.001)
    end
    T.advance(1)
    local sent = c:sent()
    T.eq(#sent, 50, "all sent")
    for i = 1, 50 do
        T.eq(T.decode(sent[i].bytes).ip.id, i, "packet " .. i .. " in order")
    end
end)

T.test("loss=100% drops everything; loss=0% nothing", function()
    local c = T.chain { "examples/netem.lua delay=1ms loss=100%" }
    for i = 1, 20 do T.eq(c:egress(pkt(i)), "drop", "lost") end
    T.advance(1)
    T.eq(#c:sent(), 0, "nothing sent")
end)

T.test("at most limit packets wait; more are dropped", function()
    local c = T.chain { "examples/netem.lua delay=10ms limit=3" }
    for i = 1, 5 do c:egress(pkt(i)) end
    T.advance(0.1)
    T.eq(#c:sent(), 3, "sent")
end)

T.test("dir=ingress delays what comes in and injects it", function()
    local c = T.chain { "examples/netem.lua delay=30ms dir=ingress" }
    T.eq(c:egress(pkt(1)), "pass", "egress untouched")
    T.eq(c:ingress(pkt(2), server), "drop", "ingress held")
    T.advance(0.031)
    T.eq(c:injected(), { pkt(2) }, "injected")
end)

T.test("with several peers, a packet goes late to the peer its destination came from", function()
    local branch = T.peer { addr = "198.51.100.7:40000", name = "branch" }
    local c = T.chain { "examples/netem.lua delay=5ms" }
    c:ingress({ ip = { src = "10.9.0.7", dst = "10.9.0.1" }, udp = {} }, branch) -- learns 10.9.0.7
    T.eq(c:egress(pkt(1, "10.9.0.7")), "drop", "delayed")
    T.eq(c:egress(pkt(2, "10.9.0.99")), "pass", "unknown destination: not delayed")
    T.advance(0.01)
    local sent = c:sent()
    T.eq(#sent, 1, "one sent")
    T.eq(sent[1].peer, branch, "to the branch")
    branch:down() -- the one peer left is the server: it gets everything, as a client's would
    T.eq(c:egress(pkt(3, "10.9.0.7")), "drop", "delayed")
    T.advance(0.01)
    sent = c:sent()
    T.eq(sent[1].peer, server, "its owner gone: to the server")
end)
