-- The victim in the sandbox test: drops UDP to port 40 arriving from the tunnel. It reads
-- mt.DROP and the string methods at every call, so a later script that could change them
-- (hostile_sandbox.lua, port 33) would change its decisions.
local mt = require "moontun"
return {
    ingress = function(pkt)
        local udp = pkt.udp
        if udp and udp.dport == 40 and ("x"):rep(2) == "xx" and string.find("guard", "ua") then
            return mt.DROP
        end
    end,
}
