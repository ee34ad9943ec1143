-- For test_wg_transport.sh: logs the first ingress packet of every source with its peer's
-- name, key, endpoint, AllowedIPs and seconds since its handshake (so the test can prove a
-- spoofed source never reached a script), and drops TCP to `port`.
local mt = require "moontun"
local args = ...
local port = tonumber(args.port or 5999)
local seen, decoded = {}, {}
return {
    -- decode runs first of all hooks: a source the transport refuses must not get here.
    decode = function(pkt, peer)
        if pkt.ip and not decoded[pkt.ip.src] then
            decoded[pkt.ip.src] = true
            mt.log("decode src=%s peer=%s", pkt.ip.src, peer.name)
        end
    end,
    ingress = function(pkt, peer)
        if pkt.ip and not seen[pkt.ip.src] then
            seen[pkt.ip.src] = true
            local hs = peer.handshake
            mt.log("seen src=%s peer=%s key=%s addr=%s endpoint=%s allowed=%s handshake=%s",
                pkt.ip.src, peer.name, tostring(peer.key), peer.addr, tostring(peer.endpoint),
                table.concat(peer.allowed_ips or {}, ","),
                hs and string.format("%.1f", hs) or "nil")
        end
        if pkt.tcp and pkt.tcp.dport == port then
            mt.log("dropped tcp/%d from %s", port, peer.name)
            return mt.DROP
        end
    end,
}
