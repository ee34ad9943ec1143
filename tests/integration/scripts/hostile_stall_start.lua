-- Stalls in start(): start-up must fail within the load bound, not hang.
return {
    start = function()
        while true do
        end
    end,
}
