-- The article's first lesson in a few lines: ten tasks that each wait
-- about a second finish together in about a second, because waiting
-- yields to the loop instead of blocking it.
-- Usage: corio scripts/demo.lua [tasks=10] [seconds=1]
local n = math.tointeger(tonumber(arg[1] or 10))
local secs = tonumber(arg[2] or 1)
if not n or n < 1 or not secs or secs < 0 then
  io.stderr:write("usage: corio scripts/demo.lua [tasks>=1] [seconds>=0]\n")
  os.exit(2)
end

local function get_number(i)
  corio.sleep(secs)
  return i * i
end

local t0 = corio.time()
local tasks = {}
for i = 1, n do tasks[i] = corio.spawn(get_number, i) end
print(tasks[1])
local results = corio.gather(tasks)
print(tasks[1])
for i = 1, n do
  io.write(string.format("task %2d -> %4d\n", i, results[i]))
end
print(string.format("%d tasks of %.2f s each took %.2f s in all", n, secs,
                    corio.time() - t0))
