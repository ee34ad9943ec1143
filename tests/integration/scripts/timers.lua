-- Counts packets per direction and reports every 0.5 s from a timer; a one-shot timer
-- re-arms itself; a cancelled timer must never fire. Exercises the packet path, the timers
-- and stop() for memory checkers.
local mt = require "moontun"
local count = { egress = 0, ingress = 0 }
local ticks = 0
local reporter, oneshot

local function rearm()
    oneshot = mt.after(0.3, function()
        ticks = ticks + 1
        rearm()
    end)
end

return {
    start = function()
        reporter = mt.every(0.5, function()
            mt.log("packets egress=%d ingress=%d ticks=%d", count.egress, count.ingress, ticks)
        end)
        rearm()
        mt.after(0.1, function() error("a cancelled timer fired") end):cancel()
    end,
    egress = function(pkt)
        count.egress = count.egress + 1
    end,
    ingress = function(pkt)
        count.ingress = count.ingress + 1
        local ip = pkt.ip
        if ip then
            local _ = ip.src, ip.dst, ip.ttl
        end
    end,
    stop = function()
        reporter:cancel()
        oneshot:cancel()
        mt.log("stop: egress=%d ingress=%d ticks=%d", count.egress, count.ingress, ticks)
    end,
}
