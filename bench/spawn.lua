-- Scheduler cost without network: K tasks each sleep MS ms, then finish;
-- the main chunk waits for all with corio.wait.  Same output line as the
-- peers of shared/bench/peers/spawn.
-- Usage: corio bench/spawn.lua [K=100000] [MS=10]
local K, MS = tonumber(arg[1] or 100000), tonumber(arg[2] or 10)
local t0 = corio.time()
local tasks = {}
for i = 1, K do tasks[i] = corio.spawn(corio.sleep, MS / 1000) end
local done, pending = corio.wait(tasks)
assert(#done == K and #pending == 0)
print(string.format("spawn=corio k=%d ms=%d secs=%.3f", K, MS, corio.time() - t0))
