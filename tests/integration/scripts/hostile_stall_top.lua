-- Stalls in its top level: start-up must fail within the load bound, not hang.
while true do
end
