-- netem.lua: network emulation in the tunnel, like Linux's `tc qdisc ... netem`: packets are
-- lost at random and the rest delayed by `delay` ± `jitter`. A delayed packet is copied and
-- dropped at once, then re-emitted from a timer: toward the tunnel with mt.send (egress), into
-- the device with mt.inject (ingress). Packets keep their order (a packet never leaves before
-- the one ahead of it, so jitter does not reorder TCP); at most `limit` wait per direction.
-- A reload (SIGHUP) keeps the waiting packets (they leave when due) and the learned peers.
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

local args = ...
local cfg = util.settings(args, "netem.lua", {
    delay = { "duration", "50ms" },
    jitter = { "duration", "0ms" },
    loss = { "percent", "0%" },
    dir = { "dir", "egress" },
    limit = { "integer", 1000 },
})
if cfg.limit < 1 then
    error("netem.lua: setting limit must be at least 1", 0)
end

-- Kept in mt.state across a reload (SIGHUP): the packets waiting in both delay lines (they
-- leave when they were due, not lost) and which peer owns which address. Peers are userdata,
-- which a reload does not carry: both hold peer ids, resolved through `peer_of`.
local NAME = "netem.lua"
local keep = util.state(NAME, args)
keep.to_tunnel = keep.to_tunnel or { first = 1, last = 0 }
keep.to_device = keep.to_device or { first = 1, last = 0 }
keep.owners = keep.owners or {}

-- Peer objects by id: learned from every ingress packet, and from mt.peers() when an id is
-- not known yet (after a reload); false for one that has left (not searched for again).
local peer_of = setmetatable({}, { __mode = "v" })
local function peer_by_id(id)
    if id == nil then
        return nil
    end
    local peer = peer_of[id]
    if peer == nil then
        for _, p in ipairs(mt.peers()) do
            peer_of[p.id] = p
        end
        peer = peer_of[id] or false
        peer_of[id] = peer
    end
    return peer or nil
end

-- A delay line: a FIFO q of { due, bytes, peer id } and one timer armed for its head. start()
-- arms it for what a reload carried over.
local function delay_line(q, emit)
    local function run()
        local now = mt.now()
        while q.first <= q.last and q[q.first].due <= now do
            emit(q[q.first])
            q[q.first] = nil
            q.first = q.first + 1
        end
        if q.first <= q.last then
            mt.after(math.max(q[q.first].due - now, 1e-6), run)
        end
    end
    local line = {}
    function line.add(item) -- false when the line is full
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
    function line.start()
        if q.first <= q.last then
            mt.after(math.max(q[q.first].due - mt.now(), 1e-6), run)
        end
    end
    return line
end

local to_tunnel = delay_line(keep.to_tunnel, function(item)
    local peer = peer_by_id(item.peer)
    if peer then -- else, or nil, err when the peer left meanwhile: the packet is lost
        mt.send(peer, item.bytes)
    end
end)
local to_device = delay_line(keep.to_device, function(item)
    mt.inject(item.bytes)
end)

-- Where an egress packet would go: a client's server; on a server, the peer that last sent
-- from the destination address (learned on ingress, forgotten after 5 idle minutes).
local owners = util.conntrack { sweep = 10, state = keep.owners }
local function peer_for(pkt)
    local ip = pkt.ip
    local peer = ip and peer_by_id(owners:get(ip.dst))
    if peer and peer.up then
        return peer
    end
    local peers = mt.peers()
    return #peers == 1 and peers[1] or nil
end

local M = {}

function M.start()
    to_tunnel.start()
    to_device.start()
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
            to_tunnel.add { bytes = pkt:bytes(), peer = peer.id }
            return mt.DROP -- sent later, or dropped now when the line is full
        end
    end
end

function M.ingress(pkt, peer)
    local ip = pkt.ip
    if ip and cfg.dir ~= "ingress" then
        peer_of[peer.id] = peer
        owners:put(ip.src, peer.id, 300)
    end
    if cfg.dir == "egress" then
        return mt.PASS
    end
    if math.random() < cfg.loss then
        return mt.DROP
    end
    if cfg.delay + cfg.jitter > 0 then
        to_device.add { bytes = pkt:bytes() }
        return mt.DROP
    end
end

return M
