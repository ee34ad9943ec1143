-- A prototype wire protocol: every packet on the wire starts with the 4 bytes "MTUN";
-- decode strips them and drops anything that lacks them.
local mt = require "moontun"
local MAGIC = "MTUN"
return {
    encode = function(pkt)
        pkt:push(MAGIC)
    end,
    decode = function(pkt)
        if #pkt < 4 or pkt:bytes(0, 4) ~= MAGIC then
            return mt.DROP
        end
        pkt:pull(4)
    end,
}
