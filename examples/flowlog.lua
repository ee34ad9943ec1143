-- flowlog.lua: per-flow packet and byte counters, logged every `interval` as a table of the
-- `top` flows by bytes. A flow is one direction of a 5-tuple (util.flow: a TCP connection is
-- two flows, data and ACKs); bytes are what the device carries, #pkt (the IP packet in tun
-- mode, the Ethernet frame in tap mode). A flow idle for `idle` is forgotten, with a last line
-- for those that made it into a table. Only IP packets are counted; all pass untouched.
-- The flows live in mt.state: after a reload (SIGHUP) their counters go on from where they were.
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

-- The live flows by key (flows.entries); the conntrack holds their deadlines and ends idle
-- ones. Both, and the count of untracked packets, are kept in mt.state across reloads.
local keep = util.state(NAME, args)
keep.flows = keep.flows or {}
keep.untracked = keep.untracked or 0
local flows = util.conntrack {
    max = cfg.max,
    state = keep.flows,
    on_expire = function(_, f)
        if not f.shown then -- a scan's thousand one-packet flows end quietly
            return
        end
        mt.log("ended (idle) %s %s > %s: %d packets, %d bytes in %.1fs", f.proto,
            endpoint(f.src, f.sport), endpoint(f.dst, f.dport), f.packets, f.bytes,
            f.last - f.first)
    end,
}

local function count(pkt)
    local proto, src, sport, dst, dport = util.flow(pkt)
    if not proto then
        return
    end
    local key = util.flow_key(proto, src, sport, dst, dport)
    local now = mt.now()
    local f = flows.entries[key]
    if not f then
        f = { proto = proto, src = src, sport = sport, dst = dst, dport = dport, first = now,
              packets = 0, bytes = 0, reported = 0 }
        if not flows:put(key, f, cfg.idle) then
            keep.untracked = keep.untracked + 1
            return
        end
    else
        flows:put(key, f, cfg.idle)
    end
    f.packets = f.packets + 1
    f.bytes = f.bytes + #pkt
    f.last = now
end

local function report()
    local rows, total = {}, 0
    for _, f in pairs(flows.entries) do
        rows[#rows + 1] = f
        total = total + f.bytes - f.reported
    end
    if #rows == 0 then
        return
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
        local f = rows[i]
        f.shown = true
        mt.log("  %-6s %-22s %-22s %9d %11d %8.1f", f.proto, endpoint(f.src, f.sport),
            endpoint(f.dst, f.dport), f.packets, f.bytes,
            (f.bytes - f.reported) * 8 / cfg.interval / 1e3)
    end
    for _, f in ipairs(rows) do
        f.reported = f.bytes
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
return M
