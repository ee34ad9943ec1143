-- flowlog.lua: per-flow packet and byte counters, logged every `interval` as a table of the
-- `top` flows by bytes. A flow is one direction of a 5-tuple (a TCP connection is two flows,
-- data and ACKs; ICMP echo: the id stands for both ports); bytes are what the device carries,
-- #pkt (the IP packet in tun mode, the Ethernet frame in tap mode). A connection idle for
-- `idle` both ways is forgotten, with a last line for each of its flows that made it into a
-- table. Only IP packets are counted; all pass untouched.
-- A reload (SIGHUP) keeps the flows: their counters go on from where they were.
--
-- Settings (-S "examples/flowlog.lua key=value ..."):
--   interval=5s   how often the table is logged (only while there are flows)
--   top=10        rows per table
--   idle=30s      a flow with no packet for this long ends
--   dir=both      which packets to count: egress, ingress or both
--   max=4096      flows tracked at once (bounds memory and the cost of a table); packets of
--                 flows beyond it are counted only as "untracked"
--
-- Example:
--   moontun -s --addr 10.9.0.1/24 -S "examples/flowlog.lua interval=5s top=10"
-- Output (one table):
--   flowlog.lua: 2 flows, 4356364 bytes in the last 5s; top 2 by bytes:
--   flowlog.lua:   proto  source                 destination              packets       bytes   kbit/s
--   flowlog.lua:   tcp    10.9.0.2:51442         10.9.0.1:5201               3117     4356168   6969.9
--   flowlog.lua:   tcp    10.9.0.1:5201          10.9.0.2:51442                  5         196      0.3
local mt = require "moontun"
local util = require "mtutil"

local NAME = "flowlog.lua"
local args = ...
local cfg = util.settings(args, NAME, {
    interval = { "duration", "5s" },
    top = { "integer", 10 },
    idle = { "duration", "30s" },
    dir = { "dir", "both" },
    max = { "integer", 4096 },
})
for _, key in ipairs { "interval", "top", "idle", "max" } do
    if cfg[key] <= 0 then
        error("flowlog.lua: setting " .. key .. " must be above 0", 0)
    end
end

local function endpoint(addr, port)
    return string.format(addr:find(":", 1, true) and "[%s]:%s" or "%s:%s", addr, port)
end

-- The flows: mt.flows, a table in C that counts each packet on its 5-tuple (both directions of
-- a connection in one entry: packets/bytes one way, rpackets/rbytes the other, each a row of
-- the table) and ends a flow idle for `idle`. An entry's value { reported bytes each way,
-- shown } is made only when a table is logged. Beyond `max`, packets are only counted as
-- untracked. stop() saves the flows in mt.state and reload() takes them back.
local keep, KEY = util.state(NAME, args)
keep.untracked = keep.untracked or 0
local flows = mt.flows { max = cfg.max, timeout = cfg.idle, evict = false }
flows:on_expire(function(f)
    local v = f.value
    if not v or not v.shown then -- a scan's thousand one-packet flows end quietly
        return
    end
    local took = string.format("%.1fs", f.last - f.first)
    if f.packets > 0 then
        mt.log("ended (idle) %s %s > %s: %d packets, %d bytes in %s", f.proto,
            endpoint(f.src, f.sport), endpoint(f.dst, f.dport), f.packets, f.bytes, took)
    end
    if f.rpackets > 0 then
        mt.log("ended (idle) %s %s > %s: %d packets, %d bytes in %s", f.proto,
            endpoint(f.dst, f.dport), endpoint(f.src, f.sport), f.rpackets, f.rbytes, took)
    end
end)

local function count(pkt)
    if not flows:add(pkt) and pkt.ip then
        keep.untracked = keep.untracked + 1
    end
end

local function report()
    local rows, total = {}, 0
    for f in flows:each() do
        local v = f.value or { 0, 0 }
        f.value = v
        if f.packets > 0 then
            rows[#rows + 1] = { f = f, v = v, side = 1, src = f.src, sport = f.sport, dst = f.dst,
                dport = f.dport, packets = f.packets, bytes = f.bytes }
        end
        if f.rpackets > 0 then
            rows[#rows + 1] = { f = f, v = v, side = 2, src = f.dst, sport = f.dport, dst = f.src,
                dport = f.sport, packets = f.rpackets, bytes = f.rbytes }
        end
    end
    if #rows == 0 then
        return
    end
    for _, r in ipairs(rows) do
        total = total + r.bytes - r.v[r.side]
    end
    table.sort(rows, function(a, b) return a.bytes > b.bytes end)
    local n = math.min(#rows, cfg.top)
    local note = keep.untracked == 0 and ""
        or string.format(" (%d packets untracked so far, max=%d)", keep.untracked, cfg.max)
    mt.log("%d flows, %d bytes in the last %gs%s; top %d by bytes:", #rows, total, cfg.interval,
        note, n)
    mt.log("  %-6s %-22s %-22s %9s %11s %8s", "proto", "source", "destination", "packets",
        "bytes", "kbit/s")
    for i = 1, n do
        local r = rows[i]
        r.v.shown = true
        mt.log("  %-6s %-22s %-22s %9d %11d %8.1f", r.f.proto, endpoint(r.src, r.sport),
            endpoint(r.dst, r.dport), r.packets, r.bytes,
            (r.bytes - r.v[r.side]) * 8 / cfg.interval / 1e3)
    end
    for _, r in ipairs(rows) do
        r.v[r.side] = r.bytes
    end
end
mt.every(cfg.interval, report)

local M = {}
if cfg.dir ~= "ingress" then
    M.egress = count
end
if cfg.dir ~= "egress" then
    M.ingress = count
end

-- Reload: the counters go on from where they were.
M.stop, M.reload = util.carry_flows(flows, keep, KEY)
return M
