-- A logging-only script.
local mt = require "moontun"
return { egress = function(pkt) mt.log("%s", tostring(pkt)) end }
