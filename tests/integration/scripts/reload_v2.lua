-- Version 2 of a reloaded script: drops ICMP from the tunnel; mt.state carried over.
local mt = require "moontun"
return {
    start = function()
        mt.state.starts = (mt.state.starts or 0) + 1
        mt.log("reload_v2 start #%d", mt.state.starts)
    end,
    ingress = function(pkt)
        if pkt.icmp then
            return mt.DROP
        end
    end,
}
