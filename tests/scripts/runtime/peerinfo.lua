local mt = require "moontun"
return {
    ingress = function(pkt, peer)
        mt.log("host=%s port=%s name=%s", peer.host, math.type(peer.port) .. ":" .. peer.port, peer.name)
    end,
}
