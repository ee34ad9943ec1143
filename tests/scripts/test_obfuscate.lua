-- Offline tests of examples/obfuscate.lua: encode and decode are inverses; foreign bytes drop.
local T = require "moontun.test"

local function ends(s)
    return T.chain { "examples/obfuscate.lua " .. (s or "key=s3cret pad=8-64") }
end

local plain = T.packet { ip = { src = "10.9.0.2", dst = "10.9.0.1" }, tcp = { dport = 22 }, payload = "secret words" }

T.test("a packet survives encode then decode at the other end", function()
    local a, b = ends(), ends()
    local v, wire = a:encode(plain)
    T.eq(v, "pass", "encode")
    T.eq(wire:sub(1, 4), "MTOB", "magic")
    assert(not wire:find("secret words", 1, true), "payload visible on the wire")
    local pad = #wire - 16 - #plain
    assert(pad >= 8 and pad <= 64, "padding " .. pad .. " outside 8-64")
    local v2, back = b:decode(wire)
    T.eq(v2, "pass", "decode")
    T.eq(back, plain, "round trip")
end)

T.test("the same packet never looks the same twice", function()
    local a = ends("key=k pad=0")
    local _, w1 = a:encode(plain)
    local _, w2 = a:encode(plain)
    assert(w1 ~= w2, "two encodings are equal")
    T.eq(#w1, 16 + #plain, "pad=0 adds no padding")
end)

T.test("wrong key, foreign bytes, truncation and lying lengths are dropped", function()
    local _, wire = ends():encode(plain)
    T.eq(ends("key=other"):decode(wire), "drop", "wrong key")
    local b = ends()
    T.eq(b:decode(plain), "drop", "a plain packet")
    T.eq(b:decode(wire:sub(1, 18)), "drop", "truncated")
    T.eq(b:decode("MTOB"), "drop", "magic only")
    local flipped = wire:sub(1, 12) .. string.char(wire:byte(13) ~ 1) .. wire:sub(14)
    T.eq(b:decode(flipped), "drop", "a flipped check byte")
    local len_lie = wire:sub(1, 14) .. string.char(wire:byte(15) ~ 0x80) .. wire:sub(16)
    T.eq(b:decode(len_lie), "drop", "a length beyond what arrived")
end)

T.test("bad settings stop loading", function()
    for _, bad in ipairs { "", "key=", "key=k pad=9-1", "key=k pad=500" } do
        local ok, err = pcall(T.chain, { "examples/obfuscate.lua " .. bad })
        T.eq(ok, false, "'" .. bad .. "' loads")
        T.like(err, "obfuscate.lua", bad)
    end
end)
