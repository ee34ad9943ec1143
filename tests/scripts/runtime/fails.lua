-- Fails on purpose, as settings ask: every packet (fail=packet), a wrong return (ret=string|
-- number), a timer that always fails (timer=1), a route to a peer that went down (route=1).
local mt = require "moontun"
local args = ...
local kept
if args.timer then
    mt.every(1, function()
        error("the timer broke")
    end)
end
return {
    ingress = function(pkt, peer)
        kept = kept or peer
        if args.fail then
            error("broken on purpose")
        end
    end,
    egress = function(pkt)
        if args.ret == "string" then
            return "drop"
        elseif args.ret == "number" then
            return 42
        elseif args.route and kept then
            return kept
        end
    end,
}
