-- Spins forever on UDP packets to port 9 (the discard port); passes everything else.
return {
    egress = function(pkt)
        local udp = pkt.udp
        if udp and udp.dport == 9 then
            while true do end
        end
    end,
}
