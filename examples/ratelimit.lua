-- ratelimit.lua: a token bucket per source address; packets over the limit are dropped
-- (a policer, like `tc ... police`). Each source gets `burst` bytes of credit, refilled at
-- `rate`; a packet that finds too little credit is dropped. A bucket left idle until it is
-- full again is forgotten (it would be the same as a new one), so memory follows the active
-- sources only.
--
-- Settings (-S "examples/ratelimit.lua key=value ..."):
--   rate=2mbit       refill rate per source (bit/s; kbit, mbit, gbit, or kbps, mbps bytes/s)
--   burst=64kb       bucket size: what a source may send at once after being quiet (b, kb, mb);
--                    TCP reaches the rate when burst holds about 250 ms of it (rate/32)
--   dir=ingress      which packets to police: ingress (from the tunnel), egress (to it), both
--   limit=0.0.0.0/0,::/0   police only sources in these prefixes; the others pass untouched
--
-- Example: limit every client of this server to 2 Mbit/s each:
--   moontun -s --addr 10.9.0.1/24 -S "examples/ratelimit.lua rate=2mbit burst=64kb"
local mt = require "moontun"
local util = require "mtutil"

local cfg = util.settings(..., "ratelimit.lua", {
    rate = { "rate", "2mbit" },
    burst = { "size", "64kb" },
    dir = { "string", "ingress" },
    limit = { "string", "0.0.0.0/0,::/0" },
})
if cfg.dir ~= "ingress" and cfg.dir ~= "egress" and cfg.dir ~= "both" then
    error("ratelimit.lua: setting dir=" .. cfg.dir .. " is not ingress, egress or both", 0)
end
for _, key in ipairs { "rate", "burst" } do
    if cfg[key] <= 0 then
        error("ratelimit.lua: setting " .. key .. " must be above 0", 0)
    end
end
local ok, limited = pcall(util.prefix_set, cfg.limit)
if not ok then
    error("ratelimit.lua: setting limit=" .. cfg.limit .. ": " .. limited, 0)
end

local bytes_per_sec = cfg.rate / 8
local refill_time = cfg.burst / bytes_per_sec -- an idle bucket is full again after this
local buckets = util.conntrack { sweep = math.max(1, refill_time) }

local function police(pkt)
    local ip = pkt.ip
    if not ip or not limited:contains(ip.src) then
        return mt.PASS
    end
    local now = mt.now()
    local b = buckets:get(ip.src)
    if b then
        b.tokens = math.min(cfg.burst, b.tokens + (now - b.t) * bytes_per_sec)
        b.t = now
    else
        b = { tokens = cfg.burst, t = now }
    end
    if not buckets:put(ip.src, b, refill_time) then
        return mt.DROP -- table full (a flood of sources): fail closed
    end
    local len = #pkt
    if b.tokens < len then
        return mt.DROP
    end
    b.tokens = b.tokens - len
    return mt.PASS
end

local M = {}
if cfg.dir ~= "egress" then
    M.ingress = police
end
if cfg.dir ~= "ingress" then
    M.egress = police
end
return M
