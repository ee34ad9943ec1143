-- nat.lua: masquerade (source NAT) for a LAN behind this end of the tunnel, plus port forwards.
--
-- Going out, TCP, UDP and ICMP echo from `inside` leave with source `public` and a public port
-- (or echo id) from `ports`: the original one when it is in the range and free, else the next
-- free one, so two LAN hosts on the same port get different public ports. Replies to
-- public:port are translated back coming in. A mapping belongs to a LAN host:port whoever it
-- talks to (endpoint-independent: while it lives, any host on the tunnel side may send to it;
-- chain firewall.lua to be stricter) and is forgotten when idle, a TCP one also soon after both
-- FINs or a RST. ICMP errors about a mapped packet (port unreachable, time exceeded, need to
-- fragment) are translated too. `forward` sends connections to public:port from the tunnel
-- side to a LAN host (destination NAT). Anything else from `inside` (other protocols, later
-- fragments: give the LAN the tunnel's MTU) is dropped, so LAN addresses never show on the
-- tunnel. This host's own ports on `public` are kept from the LAN. IPv6 passes untouched.
-- Mappings survive a reload (SIGHUP), each with the idle time it had left.
--
-- Settings (tun mode):
--   inside=PREFIX        the IPv4 LAN to masquerade (required)
--   public=ADDR          its address on the tunnel: this end's tunnel address (required)
--   ports=20000-59999    public ports and echo ids to use; keep this host's services out of it
--                        (and ideally its ephemeral ports, net.ipv4.ip_local_port_range)
--   forward=             tcp/8080=192.168.77.2:80,udp/5353=192.168.77.3:53,... (default none)
--   tcp_idle=2h  udp_idle=60s  icmp_idle=30s    how long an idle mapping lives
--
-- On the gateway (forwarding on, the LAN routed into the tunnel; the far end needs no route):
--   sysctl -w net.ipv4.ip_forward=1
--   moontun -i mt0 -c 198.51.100.1 --addr 10.9.0.2/24 -S "examples/nat.lua \
--       inside=192.168.77.0/24 public=10.9.0.2 forward=tcp/8080=192.168.77.2:80"
local mt = require "moontun"
local util = require "mtutil"

local NAME = "nat.lua"
local args = ...
local cfg = util.settings(args, NAME, {
    inside = { "prefix" },
    public = { "addr" },
    ports = { "string", "20000-59999" },
    forward = { "list", "" },
    tcp_idle = { "duration", "2h" },
    udp_idle = { "duration", "60s" },
    icmp_idle = { "duration", "30s" },
})

local function bad(key, value, expected)
    error(string.format("%s: setting %s=%s is not %s", NAME, key, value, expected), 0)
end

local ICMP, TCP, UDP = 1, 6, 17
local PROTO = { tcp = TCP, udp = UDP }
local FIN, SYN, RST = 1, 2, 4
local CLOSING = 10 -- seconds a TCP mapping outlives both FINs or a RST (the last ACKs)
local IDLE = { [TCP] = cfg.tcp_idle, [UDP] = cfg.udp_idle, [ICMP] = cfg.icmp_idle }

local inside, public = cfg.inside, cfg.public
if args.inside:find(":", 1, true) then
    bad("inside", args.inside, "an IPv4 prefix")
end
if not public:find("^%d+%.%d+%.%d+%.%d+$") then
    bad("public", public, "an IPv4 address")
end
local lo, hi = cfg.ports:match("^(%d+)%-(%d+)$")
lo, hi = tonumber(lo), tonumber(hi)
if not lo or lo < 1 or hi > 65535 or lo > hi then
    bad("ports", cfg.ports, "a port range such as 20000-59999")
end
if mt.config.tap then
    error(NAME .. ": needs a tun device (IP packets), not tap (-a)", 0)
end

-- A mapping: { proto, addr = inside address, port = inside port (or echo id), pub = public
-- port, fin = FINs seen (1 out, 2 in), fixed = a forward, mine = this host's own port }.
-- by_pub[proto * 65536 + pub] finds it coming in, out[addr][proto * 65536 + port] going out.
-- by_pub and the conntrack of the mappings (their deadlines) live in mt.state so a reload
-- keeps the connections, each with the time it had left; the rest is rebuilt from them.
local keep = util.state(NAME, args)
keep.by_pub = keep.by_pub or {}
keep.ct = keep.ct or {}
local by_pub, out = keep.by_pub, {}
local used = { [TCP] = 0, [UDP] = 0, [ICMP] = 0 } -- dynamic mappings, each on a port in range
local cursor, warned = lo, -1

local function forget(key, e)
    if by_pub[key] == e then
        by_pub[key] = nil
        if not e.fixed and not e.mine then
            used[e.proto] = used[e.proto] - 1
        end
    end
    local host = out[e.addr]
    if host and host[e.proto * 65536 + e.port] == e then
        host[e.proto * 65536 + e.port] = nil
        if next(host) == nil then
            out[e.addr] = nil
        end
    end
end

local ct = util.conntrack { on_expire = forget, max = 3 * (hi - lo + 1) + 4096, state = keep.ct }

local function add(e)
    local key = e.proto * 65536 + e.pub
    if not e.fixed and not ct:put(key, e, IDLE[e.proto]) then
        return nil
    end
    if by_pub[key] then
        forget(key, by_pub[key])
    end
    by_pub[key] = e
    if not e.mine then
        local host = out[e.addr] or {}
        out[e.addr] = host
        host[e.proto * 65536 + e.port] = e
        if not e.fixed then
            used[e.proto] = used[e.proto] + 1
        end
    end
    return e
end

-- Picks a public port for inside addr:port and records the mapping; nil when the range is full.
local function map(proto, addr, port)
    local pub, span = port, hi - lo + 1
    if pub < lo or pub > hi or by_pub[proto * 65536 + pub] then
        pub = nil
        if used[proto] < span then -- else the range is full: do not search it per packet
            for _ = 1, span do
                cursor = cursor < hi and cursor + 1 or lo
                if not by_pub[proto * 65536 + cursor] then
                    pub = cursor
                    break
                end
            end
        end
    end
    if not pub then
        if mt.now() - warned >= 1 then
            warned = mt.now()
            mt.warn("no free public port (protocol %d) for %s:%d, dropping", proto, addr, port)
        end
        return nil
    end
    return add { proto = proto, addr = addr, port = port, pub = pub, fin = 0 }
end

-- Keeps a dynamic mapping alive, at most once a second unless a TCP one closes (then only for
-- a few seconds more): the deadline is a second coarse, the packets are many.
local tick = 0
mt.every(1, function()
    tick = tick + 1
end)

local function refresh(e, flags, dir)
    if e.fixed then
        return
    end
    local fin = e.fin
    if flags then
        if flags & RST ~= 0 then
            fin = 3
        elseif flags & SYN ~= 0 then
            fin = 0
        elseif flags & FIN ~= 0 then
            fin = fin | dir
        end
    end
    if e.tick ~= tick or fin ~= e.fin then
        e.tick, e.fin = tick, fin
        ct:put(e.proto * 65536 + e.pub, e, fin == 3 and CLOSING or IDLE[e.proto])
    end
end

-- The header NAT maps in pkt, its protocol, the port (`side`, or the id of an ICMP echo of
-- type `echo`) and the name of that field; nil for anything else.
local function ports(pkt, side, echo)
    local h = pkt.tcp
    if h then
        return h, TCP, h[side], side
    end
    h = pkt.udp
    if h then
        return h, UDP, h[side], side
    end
    h = pkt.icmp
    if h and h.type == echo then
        return h, ICMP, h.id, "id"
    end
end

-- ICMP errors -------------------------------------------------------------------------------

local function ip4_int(text)
    local a, b, c, d = text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
end
local PUBLIC = ip4_int(public)

-- An ICMP error quotes the start of the packet it is about. Coming in, that packet went out
-- translated (from public:pub); going out, the error is about one that came in translated (to
-- a LAN host:port), sent by the LAN host or by this host's kernel forwarding it. Rewrites the
-- quote and the outer address as if the error were about the untranslated packet; false when
-- it is not about a mapping. Tun mode: the packet starts with the IP header.
local function icmp_error(pkt, ip, outgoing)
    local icmp = pkt.icmp
    local t = icmp and icmp.type
    if t ~= 3 and t ~= 11 and t ~= 12 then -- unreachable, time exceeded, parameter problem
        return false
    end
    local q = ip.hlen + 8
    if #pkt - q < 28 or pkt:u8(q) >> 4 ~= 4 then -- a liar's quote: too short, or not IPv4
        return false
    end
    local qhl, proto = (pkt:u8(q) & 15) * 4, pkt:u8(q + 9)
    if qhl < 20 or #pkt - q < qhl + 8 or not IDLE[proto] then
        return false
    end
    local qaddr = q + (outgoing and 16 or 12) -- the LAN host's address, or public
    local qport = q + qhl + (proto == ICMP and 4 or outgoing and 2 or 0)
    local key = proto * 65536 + pkt:u16(qport)
    local e
    if outgoing then
        local n = pkt:u32(qaddr)
        local host = out[("%d.%d.%d.%d"):format(n >> 24, n >> 16 & 255, n >> 8 & 255, n & 255)]
        e = host and host[key]
        if not e then
            return false
        end
        if ip.src ~= public then
            ip.src = public
        end
        pkt:set_u32(qaddr, PUBLIC)
        pkt:set_u16(qport, e.pub)
    else
        e = by_pub[key]
        if not e or e.mine or pkt:u32(qaddr) ~= PUBLIC then
            return false
        end
        ip.dst = e.addr
        pkt:set_u32(qaddr, ip4_int(e.addr))
        pkt:set_u16(qport, e.port)
    end
    -- The quoted IP header's own checksum, then the outer ones.
    pkt:set_u16(q + 10, 0)
    local sum = 0
    for off = q, q + qhl - 2, 2 do
        sum = sum + pkt:u16(off)
    end
    sum = (sum & 0xffff) + (sum >> 16)
    pkt:set_u16(q + 10, ~(sum + (sum >> 16)) & 0xffff)
    pkt:checksum()
    return true
end

-- Start-up: forwards from the settings, mappings carried over a reload -------------------------

-- A carried dynamic mapping is indexed again as it was, its deadline untouched; forwards are
-- made again from the settings below; anything the conntrack no longer holds is gone.
for key, e in pairs(by_pub) do
    if e.fixed or ct.entries[key] ~= e then
        by_pub[key] = nil
    else
        e.tick = nil
        if not e.mine then
            local host = out[e.addr] or {}
            out[e.addr] = host
            host[e.proto * 65536 + e.port] = e
            used[e.proto] = used[e.proto] + 1
        end
    end
end
for key in pairs(ct.entries) do
    if by_pub[key] == nil then
        ct:delete(key)
    end
end

for _, item in ipairs(cfg.forward) do
    local proto, pub, addr, port = item:match("^(%a+)/(%d+)=([%d.]+):(%d+)$")
    pub, port = tonumber(pub), tonumber(port)
    if not PROTO[proto] or pub < 1 or pub > 65535 or port < 1 or port > 65535
        or not pcall(inside.contains, inside, addr) or not inside:contains(addr) then
        bad("forward", item, "tcp|udp/PORT=ADDR:PORT with ADDR in inside, such as " ..
            "tcp/8080=192.168.77.2:80")
    end
    local taken = by_pub[PROTO[proto] * 65536 + pub]
    if taken and taken.fixed then
        error(string.format("%s: setting forward: %s/%d is forwarded twice", NAME, proto, pub), 0)
    end
    add { proto = PROTO[proto], addr = addr, port = port, pub = pub, fixed = true }
end

-- The control plane: `moontun metrics` shows the table's size, sampled each second
-- (moontun_script_nat_mappings{proto=...}: dynamic mappings; forwards are fixed), and
-- `moontun call IFNAME table [MAX]` lists the mappings (the first MAX, 100 by default).
local NAMES = { [TCP] = "tcp", [UDP] = "udp", [ICMP] = "icmp" }
local mappings = mt.gauge("nat_mappings", "dynamic NAT mappings, by protocol")
local sizes = {}
for proto, name in pairs(NAMES) do
    sizes[proto] = mappings:labels { proto = name }
end
local function sample()
    for proto, g in pairs(sizes) do
        g:set(used[proto])
    end
end
sample()
mt.every(1, sample)

mt.command("table", function(max)
    max = math.tointeger(tonumber(max or 100)) or error("table [MAX]: MAX is a number", 0)
    local keys = {}
    for key in pairs(by_pub) do
        keys[#keys + 1] = key
    end
    table.sort(keys)
    local out = { string.format("%d mappings (tcp %d, udp %d, icmp %d dynamic)", #keys,
        used[TCP], used[UDP], used[ICMP]) }
    for i = 1, math.min(#keys, max) do
        local e = by_pub[keys[i]]
        out[#out + 1] = string.format("%s %s:%d <- %s:%d%s", NAMES[e.proto], public, e.pub,
            e.addr or "-", e.port or 0, e.fixed and " (forward)" or e.mine and " (this host)" or "")
    end
    if #keys > max then
        out[#out + 1] = string.format("... and %d more", #keys - max)
    end
    return table.concat(out, "\n")
end)

-- The hot path ------------------------------------------------------------------------------

local M = {}

-- Sources seen not to be in `inside` (replies and traffic routed through this host): a table
-- lookup where inside:contains parsed the text again for each of their packets. At most
-- OUTSIDERS of them, then the memo starts over.
local OUTSIDERS = 4096
local outsiders, noutsiders = {}, 0

function M.egress(pkt)
    local ip = pkt.ip
    if not ip then
        return
    end
    local src = ip.src
    local host = out[src] -- only inside addresses have one: spares the prefix match
    if not host and src == public then -- this host's own traffic: keep its port from the LAN
        local h, proto, port = ports(pkt, "sport", 8)
        if not port then
            icmp_error(pkt, ip, true) -- it may be about a packet forwarded to the LAN
            return
        end
        local e = by_pub[proto * 65536 + port]
        if not e then
            add { proto = proto, addr = public, port = port, pub = port, mine = true, fin = 0 }
        elseif e.mine then
            refresh(e, proto == TCP and h.flags, 1)
        end
        return
    end
    if not host and (outsiders[src] or not inside:contains(src)) then
        if not outsiders[src] then
            if noutsiders == OUTSIDERS then
                outsiders, noutsiders = {}, 0
            end
            outsiders[src], noutsiders = true, noutsiders + 1
        end
        return
    end
    local h, proto, port, field = ports(pkt, "sport", 8)
    if not port then
        return icmp_error(pkt, ip, true) and mt.PASS or mt.DROP
    end
    local e = host and host[proto * 65536 + port] or map(proto, src, port)
    if not e then
        return mt.DROP
    end
    ip.src = public
    if e.pub ~= port then
        h[field] = e.pub
    end
    refresh(e, proto == TCP and h.flags, 1)
end

function M.ingress(pkt)
    local ip = pkt.ip
    if not ip or ip.dst ~= public then
        return
    end
    local h, proto, port, field = ports(pkt, "dport", 0)
    if not port then
        icmp_error(pkt, ip, false)
        return
    end
    local e = by_pub[proto * 65536 + port]
    if not e then
        return -- for this host
    end
    refresh(e, proto == TCP and h.flags, 2)
    if e.mine then
        return
    end
    ip.dst = e.addr
    if e.port ~= port then
        h[field] = e.port
    end
end

return M
