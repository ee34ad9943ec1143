-- Test script for test_offload_liars.sh: an ingress hook that prepends 4 bytes (as a script
-- tagging a VLAN or adding a header would) to every packet over 60,000 bytes. Once, a liar's
-- 65,791-byte packet grown this way was flooded to every peer and overflowed a heap buffer.
local M = {}
function M.ingress(pkt)
    if #pkt > 60000 then
        pkt:push("\x45\x00\xff\xff")
    end
end
return M
