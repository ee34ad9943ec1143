-- For test_wg_transport.sh: logs every new largest ingress packet, so the test can tell that
-- decrypted segments were joined into super-packets (longer than the MTU) before the device.
local mt = require "moontun"
local largest = 0
return {
    ingress = function(pkt, peer)
        if #pkt > largest then
            largest = #pkt
            mt.log("largest ingress packet from %s: %d bytes", peer.name, largest)
        end
    end,
}
