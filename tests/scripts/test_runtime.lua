-- The runtime's promises to script writers that are not an example's: reload hand-over, ...
local T = require "moontun.test"
local DIR = "tests/scripts/runtime/"
local PING = { ip = { src = "10.9.0.2", dst = "10.9.0.1" }, icmp = {} }

T.test("stop() hands state over to reload(state); what cannot cross is named once", function()
    local c = T.chain { DIR .. "handover.lua" }
    for _ = 1, 3 do
        c:egress(PING)
    end
    T.logs()
    assert(c:reload())
    local logs = T.logs()
    T.like(logs, "handover%.lua: mt%.state%.fn is not carried over the reload: function")
    T.like(logs, "handover%.lua: mt%.state%.nested%.matcher is not carried over the reload: userdata")
    T.like(logs, "handed over: count=3 fn=nil ok=1")
    local n = 0
    for _, l in ipairs(logs) do
        if l:find("not carried", 1, true) then
            n = n + 1
        end
    end
    T.eq(n, 2, "warnings (one per value, none from the second copy)")
    c:ingress(PING)
    T.like(T.logs(), "count 3")
end)

T.test("peer.host and peer.port split peer.addr; peer.name defaults to it", function()
    local c = T.chain { DIR .. "peerinfo.lua" }
    c:ingress(PING, T.peer { addr = "192.0.2.7:40000" })
    T.like(T.logs(), "host=192%.0%.2%.7 port=integer:40000 name=192%.0%.2%.7:40000$")
    c:ingress(PING, T.peer { addr = "[2001:db8::1]:5555", name = "branch6" })
    T.like(T.logs(), "host=2001:db8::1 port=integer:5555 name=branch6$")
end)

T.test("on_error= per script: a failing logging script with on_error=pass does not cut the tunnel",
    function()
        local c = T.chain { DIR .. "fails.lua fail=1 on_error=pass", DIR .. "log.lua" }
        T.eq(c:ingress(PING), "pass", "on_error=pass")
        local d = T.chain { DIR .. "fails.lua fail=1" }
        T.eq(d:ingress(PING), "drop", "the default (--on-error drop) is unchanged")
        local e = T.chain { DIR .. "fails.lua fail=1 on_error=drop", on_error = "pass" }
        T.eq(e:ingress(PING), "drop", "the script's own setting beats --on-error")
        local ok, err = pcall(T.chain, { DIR .. "fails.lua on_error=maybe" })
        T.eq(ok, false)
        T.like(err, "fails%.lua: setting on_error=maybe is not pass or drop")
    end)

T.test("a drop because a script failed counts once, as an error", function()
    local c = T.chain { DIR .. "fails.lua fail=1" }
    T.eq(c:ingress(PING), "drop")
    T.eq(c:stats().script_errors, 1, "errors")
    T.eq(c:stats().script_drops, 0, "drops")
end)

T.test("a handler returning a wrong type says what it returned", function()
    local c = T.chain { DIR .. "fails.lua ret=string" }
    c:egress(PING)
    T.like(T.logs(), 'egress failed: .*fails%.lua:%d+: handler returned a value of type string "drop"')
    local d = T.chain { DIR .. "fails.lua ret=number" }
    d:egress(PING)
    T.like(T.logs(), "handler returned a value of type number 42")
end)

T.test("a timer that keeps failing is stopped after 10 failures, with a line saying so", function()
    local c = T.chain { DIR .. "fails.lua timer=1" }
    T.advance(30)
    local logs = T.logs()
    T.eq(c:stats().script_errors, 10, "failures before it stopped")
    T.like(logs, "fails%.lua: a timer %(every 1 s%) failed 10 times in a row: stopped")
    T.advance(30)
    T.eq(c:stats().script_errors, 10, "failures after it stopped")
end)

T.test("returning a peer that went down drops the packet and says so, rate-limited", function()
    local p = T.peer { addr = "192.0.2.9:4000", name = "gone" }
    local c = T.chain { DIR .. "fails.lua route=1" }
    c:ingress(PING, p)
    T.eq(c:egress(PING), p, "routed while up")
    p:down()
    T.logs()
    T.eq(c:egress(PING), "drop")
    T.eq(c:egress(PING), "drop")
    local logs, n = T.logs(), 0
    for _, l in ipairs(logs) do
        if l:find("returned a peer that is gone", 1, true) then
            n = n + 1
        end
    end
    T.like(logs, "fails%.lua: egress returned a peer that is gone %(peer%.up is false%): packet dropped %(1 so far%)")
    T.eq(n, 1, "lines for two packets")
end)
