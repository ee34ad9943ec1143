-- Reports what the header views make of packets whose raw source address is 10.66.x.x
-- (the lying packets of hostile_peer.py), reading raw bytes only where they are sure to be.
local mt = require "moontun"
return {
    ingress = function(pkt)
        if #pkt >= 16 and pkt:u8(0) >> 4 == 4 and pkt:u8(12) == 10 and pkt:u8(13) == 66 or
            #pkt >= 12 and pkt:u8(0) >> 4 == 6 and pkt:u8(8) == 10 and pkt:u8(9) == 66 then
            mt.log("lying packet: ip view %s, tcp view %s", pkt.ip and "present" or "nil",
                pkt.tcp and "present" or "nil")
        end
        if #pkt < 16 and #pkt > 0 and pkt:u8(0) >> 4 == 4 then
            mt.log("lying packet: ip view %s (truncated)", pkt.ip and "present" or "nil")
        end
    end,
}
