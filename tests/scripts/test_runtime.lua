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
