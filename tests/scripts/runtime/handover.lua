-- A script that keeps a counter and saves it in stop(): the reload(state) handler gets what
-- stop saved. It also keeps a function and a matcher in mt.state, which cannot cross.
local mt = require "moontun"
local count = mt.state.count or 0
mt.state.fn = function() end
mt.state.nested = { matcher = mt.prefix("10.0.0.0/8"), ok = 1 }
return {
    egress = function(pkt)
        count = count + 1
    end,
    stop = function()
        mt.state.count = count
    end,
    reload = function(state)
        count = state.count or count
        mt.log("handed over: count=%s fn=%s ok=%s", tostring(state.count), tostring(state.fn),
            tostring(state.nested and state.nested.ok))
    end,
    ingress = function(pkt)
        mt.log("count %d", count)
    end,
}
