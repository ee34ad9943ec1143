-- Answers pings for addr= (no host has it): turns the echo request into a reply and sends it
-- back to the device with REPLY.
local mt = require "moontun"
local args = ...
local addr = assert(args.addr, "fake_host.lua needs addr=")
return {
    egress = function(pkt)
        local ip, icmp = pkt.ip, pkt.icmp
        if ip and icmp and ip.dst == addr and icmp.type == 8 then
            ip.dst, ip.src = ip.src, addr
            icmp.type = 0
            return mt.REPLY
        end
    end,
}
