-- netem.lua: network emulation in the tunnel, like Linux's `tc qdisc ... netem`: packets are
-- lost at random and the rest delayed by `delay` ± `jitter`. A delayed packet is copied and
-- dropped at once, then re-emitted from a timer: toward the tunnel with mt.send (egress), into
-- the device with mt.inject (ingress). Packets keep their order (a packet never leaves before
-- the one ahead of it, so jitter does not reorder TCP); at most `limit` wait per direction.
--
-- Settings (-S "examples/netem.lua key=value ..."):
--   delay=50ms    one-way delay added (us, ms, s)
--   jitter=0ms    the delay varies uniformly within ± jitter
--   loss=0%       probability of dropping a packet
--   dir=egress    which packets: egress (to the tunnel), ingress (from it), both
--   limit=1000    packets waiting per direction; more are dropped (as netem's limit)
--
-- Example: a lossy 50 ms link on this end's way out:
--   moontun -c 192.0.2.1 --addr 10.9.0.2/24 -S "examples/netem.lua delay=50ms jitter=5ms loss=2%"
-- On a server with several peers, an egress packet goes (late) to the peer its destination
-- was last seen from; one whose destination was never seen from a peer passes undelayed.
local mt = require "moontun"
local util = require "mtutil"

local cfg = util.settings(..., "netem.lua", {
    delay = { "duration", "50ms" },
    jitter = { "duration", "0ms" },
    loss = { "percent", "0%" },
    dir = { "dir", "egress" },
    limit = { "integer", 1000 },
})
if cfg.limit < 1 then
    error("netem.lua: setting limit must be at least 1", 0)
end

-- A delay line: a FIFO of { due, bytes, peer } and one timer armed for its head.
local function delay_line(emit)
    local q = { first = 1, last = 0 }
    local function run()
        local now = mt.now()
        while q.first <= q.last and q[q.first].due <= now do
            emit(q[q.first])
            q[q.first] = nil
            q.first = q.first + 1
        end
        if q.first <= q.last then
            mt.after(q[q.first].due - now, run)
        end
    end
    return function(item) -- false when the line is full
        if q.last - q.first + 1 >= cfg.limit then
            return false
        end
        local tail = q[q.last]
        local jitter = cfg.jitter * (2 * math.random() - 1)
        item.due = math.max(mt.now() + math.max(0, cfg.delay + jitter), tail and tail.due or 0)
        q.last = q.last + 1
        q[q.last] = item
        if q.first == q.last then -- was empty: nothing armed
            mt.after(math.max(item.due - mt.now(), 1e-6), run)
        end
        return true
    end
end

local to_tunnel = delay_line(function(item)
    mt.send(item.peer, item.bytes) -- nil, err when the peer left meanwhile: the packet is lost
end)
local to_device = delay_line(function(item)
    mt.inject(item.bytes)
end)

-- Where an egress packet would go: a client's server; on a server, the peer that last sent
-- from the destination address (learned on ingress, forgotten after 5 idle minutes).
local owners = util.conntrack { sweep = 10 }
local function peer_for(pkt)
    local ip = pkt.ip
    local peer = ip and owners:get(ip.dst)
    if peer and peer.up then
        return peer
    end
    local peers = mt.peers()
    return #peers == 1 and peers[1] or nil
end

local M = {}

function M.start()
    mt.log("delay %gms ± %gms, loss %g%%, %s", cfg.delay * 1e3, cfg.jitter * 1e3, cfg.loss * 100,
        cfg.dir)
end

if cfg.dir ~= "ingress" then
    function M.egress(pkt)
        if math.random() < cfg.loss then
            return mt.DROP
        end
        local peer = peer_for(pkt)
        if peer and cfg.delay + cfg.jitter > 0 then
            to_tunnel { bytes = pkt:bytes(), peer = peer }
            return mt.DROP -- sent later, or dropped now when the line is full
        end
    end
end

function M.ingress(pkt, peer)
    local ip = pkt.ip
    if ip and cfg.dir ~= "ingress" then
        owners:put(ip.src, peer, 300)
    end
    if cfg.dir == "egress" then
        return mt.PASS
    end
    if math.random() < cfg.loss then
        return mt.DROP
    end
    if cfg.delay + cfg.jitter > 0 then
        to_device { bytes = pkt:bytes() }
        return mt.DROP
    end
end

return M
