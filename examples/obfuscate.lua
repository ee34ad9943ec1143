-- obfuscate.lua: a prototype wire protocol, written in the encode/decode hooks. Every packet
-- leaves as
--     "MTOB" (magic) | nonce (8 random bytes) | X("ok" | length (2) | packet | padding)
-- where X XORs with a keystream drawn from key= and the nonce, so the same packet never looks
-- the same twice on the wire, and the random padding blurs its size. The far end checks the
-- magic, undoes X and keeps `length` bytes; anything without the magic, too short, without
-- "ok" after X (a wrong key) or whose length does not add up is dropped.
-- It hides the contents from a casual look (tcpdump, matching on strings); it is NOT
-- encryption: nothing is authenticated, and whoever guesses one packet's bytes (IP headers
-- are predictable) can recover the keystream of every packet. Between two moontun peers over
-- TCP, the core's offload header (segment sizes, no data) still goes in the clear.
-- Keeps nothing between packets (the key comes from the settings, each nonce is new): a
-- reload (SIGHUP) loses nothing.
-- Cost: about 5,000 Lua instructions for a 1500-byte packet, 200,000 for a 64 KiB super-packet
-- (offloads, TCP), both within the default budget of 1,000,000.
--
-- Settings:
--   key=TEXT       the shared secret, required; both ends need the same one
--   pad=MIN-MAX    random padding per packet, in bytes (default 0-32; pad=N means 0-N;
--                  at most 192, so that the 16 bytes of header and the padding stay well inside
--                  the 256 bytes of headroom the wire allows beyond the MTU)
--
--   moontun -s --udp --addr 10.9.0.1/24 -S "examples/obfuscate.lua key=s3cret pad=8-64"
--   moontun -c 198.51.100.1 --udp --addr 10.9.0.2/24 -S "examples/obfuscate.lua key=s3cret"
local mt = require "moontun"
local util = require "mtutil"

local NAME = "obfuscate.lua"
local MAGIC = "MTOB"
local HEADER = 4 + 8 -- magic and nonce, in the clear
local CHECK = "ok" -- first bytes under X: only the right key turns them back into "ok"
local INNER = 2 + 2 -- CHECK and the length, under X
local MAX_PAD = 192
local MAX_PACKET = 65535 -- what a packet can grow to (pkt:resize)

local cfg = util.settings(..., NAME, { key = { "string" }, pad = { "string", "0-32" } })
if cfg.key == "" then
    error(NAME .. ": setting key= is empty", 0)
end
local pad_min, pad_max = cfg.pad:match("^(%d+)%-(%d+)$")
if not pad_min then
    pad_min, pad_max = "0", cfg.pad:match("^(%d+)$")
end
pad_min, pad_max = tonumber(pad_min), tonumber(pad_max)
if not pad_max or pad_min > pad_max or pad_max > MAX_PAD then
    error(string.format("%s: setting pad=%s is not a range such as 0-32 (at most %d)", NAME,
        cfg.pad, MAX_PAD), 0)
end

-- The key, hashed once to 64 bits (FNV-1a); Lua integers wrap around, as the hash wants.
local KEY = 0xcbf29ce484222325
for i = 1, #cfg.key do
    KEY = (KEY ~ cfg.key:byte(i)) * 0x100000001b3
end

-- XORs s with the keystream of this nonce: splitmix64 seeded with KEY ~ nonce, 8 bytes a step.
-- Working a 64-bit word at a time keeps a 1500-byte packet to 190 steps. X is its own inverse.
local function xor_stream(s, nonce)
    local n = #s
    local padded = s .. string.rep("\0", -n % 8)
    local state = KEY ~ nonce
    local out = {}
    for i = 1, #padded, 8 do
        state = state + 0x9e3779b97f4a7c15
        local z = state
        z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
        z = (z ~ (z >> 27)) * 0x94d049bb133111eb
        out[#out + 1] = string.pack("<i8", string.unpack("<i8", padded, i) ~ z ~ (z >> 31))
    end
    return table.concat(out):sub(1, n)
end

local M = {}

function M.encode(pkt)
    -- A super-packet may leave less room than the padding wants, or none for the header.
    local room = MAX_PACKET - HEADER - INNER - #pkt
    if room < 0 then
        mt.warn("a %d-byte packet leaves no room for the header: dropped", #pkt)
        return mt.DROP
    end
    local nonce = math.random(0) -- 64 random bits
    local padding = string.rep("\0", math.min(math.random(pad_min, pad_max), room)) -- X hides it
    local body = CHECK .. string.pack(">I2", #pkt) .. pkt:bytes() .. padding
    local wire = MAGIC .. string.pack("<i8", nonce) .. xor_stream(body, nonce)
    pkt:resize(#wire)
    pkt:set_bytes(0, wire)
end

function M.decode(pkt)
    -- Anyone can send us anything: check the magic and that the length fits what arrived.
    if #pkt < HEADER + INNER or pkt:bytes(0, 4) ~= MAGIC then
        return mt.DROP
    end
    local body = xor_stream(pkt:bytes(HEADER), string.unpack("<i8", pkt:bytes(4, 8)))
    local len = string.unpack(">I2", body, 3)
    local room = #body - INNER
    if body:sub(1, 2) ~= CHECK or len == 0 or len > room or room - len > MAX_PAD then
        return mt.DROP
    end
    pkt:resize(len)
    pkt:set_bytes(0, body:sub(INNER + 1, INNER + len))
end

return M
