-- ratelimit.lua: a token bucket per source address; packets over the limit are dropped
-- (a policer, like `tc ... police`). Each source gets `burst` bytes of credit, refilled at
-- `rate`; a packet passes while there is credit left and takes its length off, possibly into
-- debt (so a packet larger than the burst, such as an offload super-packet, is limited
-- rather than blocked forever); while in debt, packets are dropped. A bucket is forgotten
-- once it would be full again (the same as a new one), so memory follows active sources.
-- A reload (SIGHUP) keeps the buckets as they were, so a source cannot get a fresh burst by
-- waiting for one.
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

local args = ...
local cfg = util.settings(args, "ratelimit.lua", {
    rate = { "rate", "2mbit" },
    burst = { "size", "64kb" },
    dir = { "dir", "ingress" },
    limit = { "string", "0.0.0.0/0,::/0" },
})
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
local everyone = cfg.limit == "0.0.0.0/0,::/0" -- the default: no prefix match per packet

-- The buckets: mt.flows keyed by the source address alone, each entry's value { tokens, time }
-- and its timeout the time until it would be full again. When full, new sources are dropped
-- (fail closed) rather than ending the buckets of active ones. stop() saves them in mt.state,
-- reload() takes them back.
local buckets = mt.flows { key = "src", max = 65536, timeout = cfg.burst / bytes_per_sec,
    evict = false, sweep = math.max(1, cfg.burst / bytes_per_sec) }

local function police(pkt)
    if not everyone then
        local ip = pkt.ip
        if not ip or not limited:contains(ip.src) then
            return mt.PASS
        end
    end
    local e, _, new = buckets:add(pkt)
    if not e then
        -- not IP, or the table is full (a flood of sources): fail closed
        return pkt.ip and mt.DROP or mt.PASS
    end
    local now = mt.now()
    local b = e.value
    if new or not b then
        b = { cfg.burst, now }
        e.value = b
    end
    local tokens = math.min(cfg.burst, b[1] + (now - b[2]) * bytes_per_sec)
    b[2] = now
    local verdict = mt.DROP
    if tokens > 0 then
        tokens = tokens - #pkt
        verdict = mt.PASS
    end
    b[1] = tokens
    -- Kept until it would be full again (after that a new bucket is the same).
    e:timeout(math.max(1e-3, (cfg.burst - tokens) / bytes_per_sec))
    return verdict
end

local M = {}
if cfg.dir ~= "egress" then
    M.ingress = police
end
if cfg.dir ~= "ingress" then
    M.egress = police
end

-- Reload: the buckets stay as they were, so waiting for a reload gives no fresh burst.
M.stop, M.reload = util.carry_flows(buckets, util.state("ratelimit.lua", args))
return M
