-- For test_wg_transport.sh: logs every ingress packet's source with its peer's name and key
-- (so the test can prove a spoofed source never reached a script), and drops TCP to `port`.
local mt = require "moontun"
local args = ...
local port = tonumber(args.port or 5999)
return {
    ingress = function(pkt, peer)
        if pkt.ip then
            mt.log("seen src=%s peer=%s key=%s addr=%s", pkt.ip.src, peer.name,
                tostring(peer.key), peer.addr)
        end
        if pkt.tcp and pkt.tcp.dport == port then
            mt.log("dropped tcp/%d from %s", port, peer.name)
            return mt.DROP
        end
    end,
}
