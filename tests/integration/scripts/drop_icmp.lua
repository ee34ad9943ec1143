-- Drops ICMP arriving from the tunnel, passes everything else (TCP included).
local mt = require "moontun"
return {
    ingress = function(pkt)
        local ip = pkt.ip
        if ip and (ip.proto == 1 or ip.proto == 58) then
            return mt.DROP
        end
    end,
}
