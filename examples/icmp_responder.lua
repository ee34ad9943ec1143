-- icmp_responder.lua: answers pings (ICMP and ICMPv6 echo requests) for addresses no host owns,
-- such as a phantom service address or a health-check target. The request is turned into its
-- reply in place and returned with REPLY: a ping from this host (egress) is answered back into
-- the device, a ping from a peer (ingress) is answered back to that peer. Nothing else changes.
-- In tap mode the neighbour (ARP/ND) for the address must be resolved otherwise, e.g. with
-- `ip neigh add`; tun mode needs nothing.
-- Keeps nothing between packets: a reload (SIGHUP) loses nothing.
--
-- Settings:
--   addr=...    required: comma list of IPv4/IPv6 addresses (or prefixes) to answer for
--   ttl=64      TTL / hop limit of the replies
--
-- Answer for 10.9.0.77 and fd09::77 on the server, for it and for every client:
--   moontun -s --addr 10.9.0.1/24 --addr fd09::1/64 -S "examples/icmp_responder.lua addr=10.9.0.77,fd09::77"
local mt = require "moontun"
local util = require "mtutil"

local NAME = "icmp_responder.lua"
local cfg = util.settings(..., NAME, { addr = { "list" }, ttl = { "integer", "64" } })
for _, a in ipairs(cfg.addr) do
    if not pcall(mt.prefix, a) then
        error(string.format("%s: setting addr=%s: '%s' is not an IPv4/IPv6 address or prefix",
            NAME, table.concat(cfg.addr, ","), a), 0)
    end
end
if cfg.ttl < 1 or cfg.ttl > 255 then
    error(string.format("%s: setting ttl=%d is not a TTL (1-255)", NAME, cfg.ttl), 0)
end
local phantoms = util.prefix_set(cfg.addr)

local ECHO = { [4] = { request = 8, reply = 0 }, [6] = { request = 128, reply = 129 } }

local function answer(pkt)
    local icmp = pkt.icmp
    if not icmp then
        return mt.PASS
    end
    local ip = pkt.ip
    local echo = ECHO[ip.version]
    if icmp.type ~= echo.request or icmp.code ~= 0 or not phantoms:contains(ip.dst) then
        return mt.PASS
    end
    -- Each field write folds its change into the checksums (ICMPv6's covers the addresses).
    ip.src, ip.dst = ip.dst, ip.src
    ip.ttl = cfg.ttl
    icmp.type = echo.reply
    local eth = pkt.eth
    if eth then
        eth.src, eth.dst = eth.dst, eth.src
    end
    return mt.REPLY
end

return { egress = answer, ingress = answer }
