-- mtutil: what several example scripts need, written once.
--   local util = require "mtutil"
--   local cfg = util.settings(..., "firewall.lua", { allow = { "list", "icmp" }, reject = { "bool", false } })
--   local set = util.prefix_set("10.0.0.0/8,fd00::/8")      set:contains("10.1.2.3")
--   local ct = util.conntrack{ sweep = 1 }                   ct:put(key, value, ttl) ct:get(key)
--   local keep, key = util.state("firewall.lua", ...)       this script's part of mt.state
--   util.conntrack{ state = keep }                           entries that outlive a reload
--   util.flow(pkt) -> proto, src, sport, dst, dport ; util.flow_key(...) ; util.reverse_key(...)
--   M.stop, M.reload = util.carry_flows(flows, keep, key)    a mt.flows table over reloads
--   util.l3_offset(pkt) -> where the IP header starts (tap: after Ethernet and VLAN tags)
-- Settings errors are raised at load time as one line naming the script and the setting.
local mt = require "moontun"

local util = {}

-- Settings ---------------------------------------------------------------------------------

local UNITS_TIME = { us = 1e-6, ms = 1e-3, s = 1, m = 60, min = 60, h = 3600 }
local UNITS_RATE = { bit = 1, kbit = 1e3, mbit = 1e6, gbit = 1e9, bps = 8, kbps = 8e3, mbps = 8e6 }
local UNITS_SIZE = { b = 1, kb = 1024, k = 1024, mb = 1024 * 1024, m = 1024 * 1024 }

local function number_with_unit(text, units, default_unit)
    local num, unit = text:match("^(%d+%.?%d*)(%a*)$")
    if not num then
        return nil
    end
    unit = unit:lower()
    if unit == "" then
        unit = default_unit
    end
    local scale = units[unit]
    return scale and tonumber(num) * scale or nil
end

-- Each parser takes the text of a setting and returns its value, or nil and what was expected.
local parsers = {
    string = function(v)
        return v
    end,
    number = function(v)
        return tonumber(v), "a number"
    end,
    integer = function(v)
        local n = tonumber(v)
        return (n and n == math.floor(n)) and math.tointeger(n) or nil, "an integer"
    end,
    bool = function(v)
        if v == "1" or v == "true" or v == "yes" or v == "on" then
            return true
        elseif v == "0" or v == "false" or v == "no" or v == "off" then
            return false
        end
        return nil, "1/0, true/false, yes/no or on/off"
    end,
    port = function(v)
        local n = math.tointeger(tonumber(v))
        return (n and n >= 1 and n <= 65535) and n or nil, "a port (1-65535)"
    end,
    addr = function(v)
        local ok = pcall(mt.prefix, v)
        return (ok and not v:find("/", 1, true)) and v or nil, "an IPv4 or IPv6 address"
    end,
    prefix = function(v)
        local ok, m = pcall(mt.prefix, v)
        return ok and m or nil, "a prefix such as 10.0.0.0/8 or fd00::/8"
    end,
    dir = function(v)
        return (v == "ingress" or v == "egress" or v == "both") and v or nil,
            "ingress, egress or both"
    end,
    list = function(v)
        local items = {}
        for item in v:gmatch("[^,]+") do
            items[#items + 1] = item
        end
        return items
    end,
    duration = function(v)
        return number_with_unit(v, UNITS_TIME, "s"), "a duration such as 50ms, 5s or 2m"
    end,
    rate = function(v)
        return number_with_unit(v, UNITS_RATE, "bit"), "a rate such as 512kbit or 2mbit"
    end,
    size = function(v)
        return number_with_unit(v, UNITS_SIZE, "b"), "a size such as 1500, 64kb or 1mb"
    end,
    percent = function(v)
        local n = tonumber((v:gsub("%%$", "")))
        return (n and n >= 0 and n <= 100) and n / 100 or nil, "a percentage such as 2%"
    end,
}
util.parsers = parsers

-- Checks args (the -S settings) against spec = { name = { type, default }, ... } and returns
-- a table of parsed values. Unknown names and malformed values raise one clear error.
-- A default of nil makes the setting required.
function util.settings(args, script, spec)
    args = args or {}
    local out = {}
    for key in pairs(args) do
        if not spec[key] then
            local known = {}
            for k in pairs(spec) do
                known[#known + 1] = k
            end
            table.sort(known)
            error(string.format("%s: unknown setting '%s' (known: %s)", script, key,
                table.concat(known, ", ")), 0)
        end
    end
    for key, def in pairs(spec) do
        local kind, default = def[1], def[2]
        local parse = assert(parsers[kind], "unknown setting type " .. tostring(kind))
        local text = args[key]
        if text == nil then
            if default == nil then
                error(string.format("%s: setting '%s' is required", script, key), 0)
            end
            out[key] = type(default) == "string" and kind ~= "string" and parse(default) or default
        else
            local value, expected = parse(text)
            if value == nil then
                error(string.format("%s: setting %s=%s is not %s", script, key, text, expected), 0)
            end
            out[key] = value
        end
    end
    return out
end

-- Prefix sets -------------------------------------------------------------------------------

local PrefixSet = {}
PrefixSet.__index = PrefixSet

-- A set of prefixes from a list or a comma-separated string; :contains(addr) is true when any
-- prefix holds the address (IPv4 or IPv6 text).
function util.prefix_set(spec)
    local items = type(spec) == "table" and spec or parsers.list(spec or "")
    local set = setmetatable({ matchers = {}, text = {} }, PrefixSet)
    for _, p in ipairs(items) do
        local ok, m = pcall(mt.prefix, p)
        if not ok then
            error(string.format("'%s' is not a prefix", p), 0)
        end
        set.matchers[#set.matchers + 1] = m
        set.text[#set.text + 1] = p
    end
    return set
end

function PrefixSet:contains(addr)
    for _, m in ipairs(self.matchers) do
        if m:contains(addr) then
            return true
        end
    end
    return false
end

function PrefixSet:__tostring()
    return "prefix_set{" .. table.concat(self.text, ",") .. "}"
end

-- State kept across reloads ------------------------------------------------------------------

-- This script's own table in mt.state, which a reload (SIGHUP) copies into the new Lua state
-- before the scripts run again: what a script keeps there, it finds again at load time. Only
-- plain data crosses (tables, strings, numbers, booleans; shared subtables keep their shape):
-- functions and userdata (peers, timers, prefixes) are dropped, and timers must be armed
-- again by the new script. The key is the script's name and its settings, so the scripts of
-- a chain do not see each other's state; the same script twice with the same settings gets a
-- table each (the second "#2"), in chain order, which a reload keeps.
local claimed = {} -- keys handed out in this Lua state: this module loads once per state
function util.state(name, args)
    local keys = {}
    for k in pairs(args or {}) do
        keys[#keys + 1] = k
    end
    table.sort(keys)
    local parts = { name }
    for _, k in ipairs(keys) do
        parts[#parts + 1] = k .. "=" .. tostring(args[k])
    end
    local key = table.concat(parts, " ")
    claimed[key] = (claimed[key] or 0) + 1
    if claimed[key] > 1 then
        key = key .. " #" .. claimed[key]
    end
    local t = mt.state[key]
    if type(t) ~= "table" then
        t = {}
        mt.state[key] = t
    end
    return t, key -- the key finds it again in the copy a reload(state) handler gets
end

-- Flows --------------------------------------------------------------------------------------

-- The stop and reload handlers that carry a mt.flows table over a reload: stop saves it in
-- keep (the script's util.state table), reload finds it by key in the copy it is handed and
-- restores it (each flow with the time it had left), then drops the saved copy.
--   M.stop, M.reload = util.carry_flows(flows, util.state(NAME, args))
function util.carry_flows(flows, keep, key)
    local function stop()
        keep.flows = flows:save()
    end
    local function reload(state)
        local old = state[key]
        if type(old) == "table" and type(old.flows) == "table" then
            flows:restore(old.flows)
        end
        keep.flows = nil
    end
    return stop, reload
end

-- The 5-tuple of a packet: proto ("tcp", "udp", "icmp", or the protocol number), src, sport,
-- dst, dport. ICMP echo uses the echo id as both ports so requests and replies pair up.
-- Returns nil for packets that are not IP.
function util.flow(pkt)
    return pkt:flow() -- one call into C instead of six field reads
end

function util.flow_key(proto, src, sport, dst, dport)
    return string.format("%s %s:%s>%s:%s", proto, src, sport, dst, dport)
end

-- The key of the same flow seen in the other direction.
function util.reverse_key(proto, src, sport, dst, dport)
    return util.flow_key(proto, dst, dport, src, sport)
end

-- Where the IP header starts: 0 on a tun device; on a tap, after the Ethernet header and up to
-- two VLAN tags (802.1Q, 802.1ad), as the core's parser allows. Call it only when pkt.ip is
-- there: then the reads are inside the packet.
function util.l3_offset(pkt)
    if not pkt.eth then
        return 0
    end
    local off = 14
    while off <= 18 and (pkt:u16(off - 2) == 0x8100 or pkt:u16(off - 2) == 0x88a8) do
        off = off + 4
    end
    return off
end

-- Connection tracking ------------------------------------------------------------------------

local Conntrack = {}
Conntrack.__index = Conntrack

-- A table of entries that expire: ct:put(key, value, ttl) stores (or refreshes) an entry that
-- lives ttl seconds after its last put/touch; ct:get(key) returns the value while it lives.
-- Expired entries are swept every opts.sweep seconds (default 1) by an mt.every timer, and
-- opts.on_expire(key, value) is called for each. opts.max bounds the number of entries:
-- a put beyond it fails (returns false) rather than letting memory grow without bound.
-- opts.state (a table in mt.state, see util.state) keeps the entries and their deadlines
-- across reloads: the new conntrack takes over what the old one held, values included (plain
-- data only: an entry whose value cannot cross a reload is dropped). Deadlines are mt.now()
-- times, a monotonic clock that a reload does not restart.
function util.conntrack(opts)
    opts = opts or {}
    local keep = opts.state or {}
    keep.entries = keep.entries or {}
    keep.deadline = keep.deadline or {}
    local ct = setmetatable({
        entries = keep.entries,
        deadline = keep.deadline,
        count = 0,
        max = opts.max or 65536,
        on_expire = opts.on_expire,
    }, Conntrack)
    for key in pairs(ct.deadline) do -- its value did not cross (a peer, a function): gone
        if ct.entries[key] == nil then
            ct.deadline[key] = nil
        end
    end
    for key in pairs(ct.entries) do
        if ct.deadline[key] == nil then
            ct.entries[key] = nil
        else
            ct.count = ct.count + 1
        end
    end
    ct.timer = mt.every(opts.sweep or 1, function()
        ct:sweep()
    end)
    return ct
end

function Conntrack:get(key)
    local d = self.deadline[key]
    if d and d >= mt.now() then
        return self.entries[key]
    end
    return nil
end

function Conntrack:put(key, value, ttl)
    if self.entries[key] == nil then
        if self.count >= self.max then
            return false
        end
        self.count = self.count + 1
    end
    self.entries[key] = value
    self.deadline[key] = mt.now() + ttl
    return true
end

-- Extends an entry's life by ttl from now; false when there is no live entry.
function Conntrack:touch(key, ttl)
    if self:get(key) == nil then
        return false
    end
    self.deadline[key] = mt.now() + ttl
    return true
end

function Conntrack:delete(key)
    if self.entries[key] ~= nil then
        self.count = self.count - 1
        self.entries[key] = nil
        self.deadline[key] = nil
    end
end

function Conntrack:sweep()
    local now = mt.now()
    local expired = {}
    for key, d in pairs(self.deadline) do
        if d < now then
            expired[#expired + 1] = key
        end
    end
    for _, key in ipairs(expired) do
        local value = self.entries[key]
        self:delete(key)
        if self.on_expire then
            self.on_expire(key, value)
        end
    end
end

function Conntrack:size()
    return self.count
end

return util
