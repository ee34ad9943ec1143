-- dns_sinkhole.lua: answers this host's DNS queries for blocked names itself. An A or AAAA
-- query for a blocked name (or any name under it) going into the tunnel (egress, UDP to port
-- 53) never leaves: it is turned into an NXDOMAIN answer in place (question kept, no records)
-- and written back to the device with REPLY. Every other packet, including a query this script
-- cannot parse (several questions, a compressed or overlong name), passes untouched.
-- Keeps nothing between packets (the block list comes from the settings): a reload loses nothing.
--
-- Settings:
--   block=NAME,...   names to sink, required; case does not matter, and subdomains are
--                    covered (ads.example sinks x.ads.example but not badads.example)
--
--   moontun -c 198.51.100.1 --addr 10.9.0.2/24 \
--       -S "examples/dns_sinkhole.lua block=ads.example,tracker.test"
local mt = require "moontun"
local util = require "mtutil"

local NAME = "dns_sinkhole.lua"
local QTYPES = { [1] = true, [28] = true } -- A, AAAA
local CLASS_IN = 1

local cfg = util.settings(..., NAME, { block = { "list" } })
local blocked = {}
for _, name in ipairs(cfg.block) do
    name = name:lower():gsub("%.$", "")
    for label in (name .. "."):gmatch("(.-)%.") do
        if not label:match("^[%w_-]+$") or #label > 63 then
            error(string.format("%s: setting block= has a bad name '%s'", NAME, name), 0)
        end
    end
    blocked[name] = true
end
if next(blocked) == nil then
    error(NAME .. ": setting block= names nothing", 0)
end

-- True when name or one of its parent domains is blocked.
local function is_blocked(name)
    while name do
        if blocked[name] then
            return true
        end
        name = name:match("^[^.]*%.(.+)$")
    end
    return false
end

-- Reads the question's name at off, up to the end of the message at stop. Returns the name
-- (lowercase, dotted) and the offset after it, or nil when it is malformed: the labels are the
-- sender's word, so each length is checked against what is left before it is used.
local function read_name(pkt, off, stop)
    local labels = {}
    while true do
        if off >= stop then
            return nil
        end
        local len = pkt:u8(off)
        if len == 0 then
            break
        elseif len > 63 or len >= stop - off then -- 0xc0 = compression pointer: not in a question
            return nil
        end
        labels[#labels + 1] = pkt:bytes(off + 1, len)
        off = off + 1 + len
    end
    local name = table.concat(labels, ".")
    return #name <= 253 and name:lower() or nil, off + 1
end

local M = {}

function M.egress(pkt)
    local ip, udp = pkt.ip, pkt.udp
    if not udp or udp.dport ~= 53 then
        return
    end
    local l3 = util.l3_offset(pkt)
    local l4 = l3 + ip.hlen
    local dns, stop = l4 + 8, l4 + udp.len
    -- A standard query (QR=0, opcode 0) with exactly one question.
    if stop - dns < 12 then
        return
    end
    local flags = pkt:u16(dns + 2)
    if flags & 0xf800 ~= 0 or pkt:u16(dns + 4) ~= 1 then
        return
    end
    local name, qend = read_name(pkt, dns + 12, stop)
    if not name or stop - qend < 4 or not QTYPES[pkt:u16(qend)] or pkt:u16(qend + 2) ~= CLASS_IN
        or not is_blocked(name) then
        return
    end

    -- The answer, in place: back to where the query came from, QR and RA set, RD and CD
    -- echoed, RCODE 3 (NXDOMAIN), the question and nothing after it (an EDNS record included).
    ip.src, ip.dst = ip.dst, ip.src
    udp.sport, udp.dport = udp.dport, udp.sport
    if pkt.eth then
        pkt.eth.src, pkt.eth.dst = pkt.eth.dst, pkt.eth.src
    end
    pkt:set_u16(dns + 2, 0x8000 | (flags & 0x0110) | 0x0080 | 3)
    pkt:set_u16(dns + 6, 0) -- answers
    pkt:set_u16(dns + 8, 0) -- authority
    pkt:set_u16(dns + 10, 0) -- additional
    local size = qend + 4
    pkt:set_u16(l4 + 4, size - l4) -- UDP length (pkt.udp.len is read-only)
    if ip.version == 4 then
        pkt:set_u16(l3 + 2, size - l3) -- total length
    else
        pkt:set_u16(l3 + 4, size - l3 - 40) -- payload length
    end
    pkt:resize(size)
    pkt:checksum()
    mt.debug("sinkholed %s", name)
    return mt.REPLY
end

return M
