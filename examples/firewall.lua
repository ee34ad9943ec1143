-- firewall.lua: a stateful firewall for the tunnel side of this host.
--
-- Everything this host sends into the tunnel (egress) passes and is remembered, so the replies
-- come back in. From the tunnel (ingress) only packets of a remembered connection pass, plus new
-- connections that `allow` lets start; those are remembered too and then flow both ways. A
-- connection is forgotten when idle for its timeout, and TCP soon after a FIN or RST.
-- Always passed: non-IP frames (ARP in tap mode), ICMP errors and IPv6 neighbour discovery
-- (PMTU discovery and tap-mode IPv6 need them; the kernel matches errors to its own sockets),
-- and IPv4/IPv6 fragments after the first (only the first carries ports: it is the one filtered).
-- A reload (SIGHUP) keeps the connections, with their timeouts (saved in mt.state by stop()).
--
-- Settings:
--   allow=icmp           what may start from the tunnel side: a comma list of tcp/PORT,
--                        udp/PORT, tcp/LO-HI, udp/LO-HI and icmp (inbound ping, IPv4 and IPv6)
--   reject=0             1: answer a denied TCP SYN with a RST (connection refused) instead of
--                        dropping it silently
--   timeout_tcp=300      idle timeouts (durations: 300, 5m, 1h ...)
--   timeout_udp=30       (other IP protocols use timeout_udp too)
--   timeout_icmp=10
--   linger=10s           how long a TCP connection is kept after a FIN or RST
--   max=65536            connections tracked at once (about 250 bytes each); when full, a new
--                        one ends the least recently used
--
-- Server with ssh and a web server reachable through the tunnel, ping allowed:
--   moontun -s --addr 10.9.0.1/24 -S "examples/firewall.lua allow=tcp/22,tcp/80,icmp reject=1"
local mt = require "moontun"
local util = require "mtutil"

local NAME = "firewall.lua"
local args = ...
local cfg = util.settings(args, NAME, {
    allow = { "list", "icmp" },
    reject = { "bool", false },
    timeout_tcp = { "duration", "300" },
    timeout_udp = { "duration", "30" },
    timeout_icmp = { "duration", "10" },
    linger = { "duration", "10" },
    max = { "integer", 65536 },
})

-- allowed.tcp / allowed.udp: lists of {lo, hi, rule} port ranges; allowed.icmp: true.
local allowed = { tcp = {}, udp = {} }
for _, rule in ipairs(cfg.allow) do
    local proto, lo, hi = rule:match("^(%a+)/(%d+)%-(%d+)$")
    if not proto then
        proto, lo = rule:match("^(%a+)/(%d+)$")
        hi = lo
    end
    lo, hi = math.tointeger(tonumber(lo)), math.tointeger(tonumber(hi))
    if rule == "icmp" then
        allowed.icmp = true
    elseif allowed[proto] and lo and hi and lo >= 1 and lo <= hi and hi <= 65535 then
        table.insert(allowed[proto], { lo, hi, rule })
    else
        error(string.format("%s: setting allow=%s: '%s' is not tcp/PORT, udp/PORT, tcp/LO-HI, "
            .. "udp/LO-HI or icmp (ports 1-65535)", NAME, table.concat(cfg.allow, ","), rule), 0)
    end
end

local TCP, UDP, ICMP, OTHER = 6, 17, 1, 0
local TIMEOUT = { [TCP] = cfg.timeout_tcp, [UDP] = cfg.timeout_udp, [ICMP] = cfg.timeout_icmp,
    [OTHER] = cfg.timeout_udp }
local SYN, RST, ACK, FIN = 0x02, 0x04, 0x10, 0x01
local NONE = {}
local ECHO_REQUEST = { [8] = true, [128] = true }
-- ICMP errors (dest unreachable, time exceeded, parameter problem, ICMPv6 packet too big) and
-- neighbour discovery (ICMPv6 133-137).
local ICMP_ALWAYS = { [4] = { [3] = true, [11] = true, [12] = true },
    [6] = { [1] = true, [2] = true, [3] = true, [4] = true,
        [133] = true, [134] = true, [135] = true, [136] = true, [137] = true } }

-- The connections: mt.flows, a table in C keyed by the packet's 5-tuple and found from either
-- direction (sided: a reply must come from the other side of the tunnel than the packet that
-- opened the connection), each with its own idle timeout (a closing TCP connection keeps a
-- short linger); when full, a new connection ends the least recently used one. stop() saves
-- them in mt.state and reload() takes them back: after a reload, replies to connections
-- either side opened still come in.
local conns = mt.flows { max = cfg.max, timeout = cfg.timeout_udp, sided = true }
-- Turns a TCP SYN into the RST|ACK that refuses it, in place: addresses and ports swapped,
-- ack = its sequence space used (SYN, data) + its seq, no options, no payload.
local function refuse(pkt)
    local ip, tcp = pkt.ip, pkt.tcp
    local l3, hlen, v4 = util.l3_offset(pkt), ip.hlen, ip.version == 4
    local th = l3 + hlen
    local seglen = ip.len - hlen - (pkt:u8(th + 12) >> 4) * 4 + 1
    local ack = (tcp.seq + seglen) & 0xffffffff
    if pkt.eth then -- answer the sender's MAC from ours
        local dst, src = pkt:bytes(0, 6), pkt:bytes(6, 6)
        pkt:set_bytes(0, src)
        pkt:set_bytes(6, dst)
    end
    local alen, aoff = v4 and 4 or 16, l3 + (v4 and 12 or 8)
    local src, dst = pkt:bytes(aoff, alen), pkt:bytes(aoff + alen, alen)
    pkt:set_bytes(aoff, dst)
    pkt:set_bytes(aoff + alen, src)
    if v4 then
        pkt:set_u16(l3 + 2, hlen + 20) -- total length
        pkt:set_u8(l3 + 8, 64) -- TTL
    else
        pkt:set_u16(l3 + 4, hlen - 40 + 20) -- payload length (extension headers kept)
        pkt:set_u8(l3 + 7, 64) -- hop limit
    end
    local sport, dport = pkt:u16(th), pkt:u16(th + 2)
    pkt:set_u16(th, dport)
    pkt:set_u16(th + 2, sport)
    pkt:set_u32(th + 4, 0)
    pkt:set_u32(th + 8, ack)
    pkt:set_u16(th + 12, 0x5000 | RST | ACK) -- data offset 5 words: no options
    pkt:set_u32(th + 16, 0) -- window 0, checksum (recomputed below)
    pkt:set_u16(th + 18, 0) -- urgent pointer
    pkt:resize(th + 20)
    pkt:checksum()
    return mt.REPLY
end

-- What the rules need of a packet: its protocol (TCP, UDP, ICMP or OTHER) and its TCP flags or
-- ICMP type; nil for what passes without state: non-IP, ICMP errors and neighbour discovery, a
-- TCP/UDP/ICMP packet without its header (a fragment after the first). Views, not strings: the
-- common case is two field reads.
local function kind(pkt)
    local tcp = pkt.tcp
    if tcp then
        return TCP, tcp.flags
    elseif pkt.udp then
        return UDP
    end
    local icmp = pkt.icmp
    if icmp then
        local t = icmp.type
        if ICMP_ALWAYS[pkt.ip.version][t] then
            return nil
        end
        return ICMP, t
    end
    local ip = pkt.ip
    local proto = ip and ip.proto
    if proto == nil or proto == 6 or proto == 17 or proto == 1 or proto == 58 then
        return nil
    end
    return OTHER
end

-- The idle timeout a TCP packet sets on its connection, or nil to keep the one in force: a
-- FIN or RST leaves a short linger, a fresh SYN reopens a lingering 4-tuple.
local function tcp_ttl(flags)
    if flags & (FIN | RST) ~= 0 then
        return cfg.linger
    elseif flags & (SYN | ACK) == SYN then
        return cfg.timeout_tcp
    end
    return nil
end

-- The allow rule that lets a packet of no known connection start one from the tunnel side,
-- or nil.
local function may_start(pkt, proto, what)
    if proto == ICMP then
        return allowed.icmp and ECHO_REQUEST[what] and "icmp" or nil
    elseif proto == TCP then
        if what & (SYN | ACK | RST) ~= SYN then
            return nil
        end
    elseif proto ~= UDP then
        return nil
    end
    local port = (proto == TCP and pkt.tcp or pkt.udp).dport
    for _, r in ipairs(allowed[proto == TCP and "tcp" or "udp"] or NONE) do
        if port >= r[1] and port <= r[2] then
            return r[3]
        end
    end
    return nil
end

-- Packets from the tunnel side by what decided them: an allow rule (a new connection),
-- "established", "deny", "reject" or "full" (no room to remember it). `moontun metrics` shows
-- moontun_script_firewall_packets_total{rule=...}; `moontun call IFNAME rules` the rules.
local packets = mt.counter("firewall_packets_total",
    "packets from the tunnel side, by the rule that let them in or stopped them")
local HIT = setmetatable({}, { __index = function(t, rule)
    t[rule] = packets:labels { rule = rule } -- one series per rule, made once
    return t[rule]
end })
for _, rule in ipairs(cfg.allow) do
    local _ = HIT[rule] -- every rule shows, at 0 until it matches
end

mt.command("rules", function()
    local out = {}
    for _, rule in ipairs(cfg.allow) do
        out[#out + 1] = string.format("allow %-14s %d packets", rule, HIT[rule]:get())
    end
    for _, rule in ipairs { "established", cfg.reject and "reject" or "deny", "full" } do
        out[#out + 1] = string.format("%-20s %d packets", rule, HIT[rule]:get())
    end
    out[#out + 1] = string.format("connections tracked: %d", #conns)
    return table.concat(out, "\n")
end)

-- Counts the packet on its connection (made when new) and sets the timeout it calls for.
local function track(pkt, proto, what, e, new)
    if new then
        e:timeout(proto == TCP and tcp_ttl(what) or TIMEOUT[proto])
    elseif proto == TCP then
        local ttl = tcp_ttl(what)
        if ttl then
            e:timeout(ttl)
        end
    end
end

local M = {}

-- TCP flags that may change a connection's timeout (see tcp_ttl): the others need no call.
local RETIME = FIN | RST | SYN

function M.egress(pkt)
    local proto, what = kind(pkt)
    if proto then
        local e, _, new = conns:add(pkt)
        if e and (new or proto == TCP and what & RETIME ~= 0) then
            track(pkt, proto, what, e, new)
        end
    end
    return mt.PASS
end

function M.ingress(pkt)
    local proto, what = kind(pkt)
    if not proto then
        return mt.PASS
    end
    local e = conns:lookup(pkt)
    if e then
        if proto == TCP and what & RETIME ~= 0 then
            track(pkt, proto, what, e, false)
        end
        HIT.established:inc()
        return mt.PASS
    end
    local rule = may_start(pkt, proto, what)
    if not rule then
        if cfg.reject and proto == TCP and what & (SYN | ACK | RST) == SYN then
            HIT.reject:inc()
            return refuse(pkt)
        end
        HIT.deny:inc()
        return mt.DROP
    end
    e = conns:insert(pkt)
    if not e then
        HIT.full:inc()
        return mt.DROP -- the table is full (evict=false) or the packet has no flow key
    end
    track(pkt, proto, what, e, true)
    HIT[rule]:inc()
    return mt.PASS
end

-- Reload: the old script saves its connections, the new one takes them back (with the time
-- each had left) before it sees a packet.
M.stop, M.reload = util.carry_flows(conns, util.state(NAME, args))

return M
