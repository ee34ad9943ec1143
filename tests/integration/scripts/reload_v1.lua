-- Version 1 of a reloaded script: passes everything, counts its starts in mt.state.
local mt = require "moontun"
return {
    start = function()
        mt.state.starts = (mt.state.starts or 0) + 1
        mt.log("reload_v1 start #%d", mt.state.starts)
    end,
}
