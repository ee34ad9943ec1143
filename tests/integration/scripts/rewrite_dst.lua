-- Destination NAT for a virtual address: packets from the tunnel for virtual= go to real=,
-- and the replies leave with virtual= as their source again. Checksums are fixed by the
-- header views; the kernel drops the packet if they are wrong.
local args = ...
local virtual, real = args.virtual, args.real
return {
    ingress = function(pkt)
        local ip = pkt.ip
        if ip and ip.dst == virtual then
            ip.dst = real
        end
    end,
    egress = function(pkt)
        local ip = pkt.ip
        if ip and ip.src == real and pkt.tcp then
            ip.src = virtual
        end
    end,
}
