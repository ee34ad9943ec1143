-- mss_clamp.lua: lowers the MSS option of TCP SYNs crossing the tunnel, both ways, so TCP picks
-- segments that fit the tunnel and nothing depends on PMTU discovery (the classic tunnel fix,
-- iptables' TCPMSS --set-mss). An MSS already at or below the setting is left alone; a SYN
-- without an MSS option is left alone too.
-- Keeps nothing between packets: a reload (SIGHUP) loses nothing.
--
-- Settings:
--   mss=1200    the largest MSS a SYN may announce (536-65535). For a tunnel of MTU M:
--               M - 40 (IPv4) or M - 60 (IPv6), less any IP or TCP options you expect
--
-- On either end (or both):
--   moontun -c 198.51.100.1 --addr 10.9.0.2/24 -S "examples/mss_clamp.lua mss=1200"
local mt = require "moontun"
local util = require "mtutil"

local NAME = "mss_clamp.lua"
local cfg = util.settings(..., NAME, { mss = { "integer", "1200" } })
if cfg.mss < 536 or cfg.mss > 65535 then
    error(string.format("%s: setting mss=%d is not an MSS (536-65535)", NAME, cfg.mss), 0)
end

local SYN = 0x02
local KIND_END, KIND_NOP, KIND_MSS = 0, 1, 2

local function clamp(pkt)
    local tcp = pkt.tcp
    if not tcp or tcp.flags & SYN == 0 then
        return
    end
    -- The options lie between the fixed header and the data offset; the view checked that
    -- the data offset stays inside the packet. Each option's length is checked before it is
    -- followed: a liar's zero or oversized length ends the walk.
    local th = util.l3_offset(pkt) + pkt.ip.hlen
    local off, stop = th + 20, th + (pkt:u8(th + 12) >> 4) * 4
    while off < stop do
        local kind = pkt:u8(off)
        if kind == KIND_END then
            return
        elseif kind == KIND_NOP then
            off = off + 1
        else
            local len = off + 1 < stop and pkt:u8(off + 1) or 0
            if len < 2 or len > stop - off then
                return
            end
            if kind == KIND_MSS and len == 4 then
                local mss = pkt:u16(off + 2)
                if mss > cfg.mss then
                    pkt:set_u16(off + 2, cfg.mss)
                    pkt:checksum()
                end
                return
            end
            off = off + len
        end
    end
end

return { egress = clamp, ingress = clamp }
