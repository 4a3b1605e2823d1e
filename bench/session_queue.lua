-- Transfers queued behind a session's limit (issue 13, item 7), against
-- the same job with the limit in user code.  N GETs of URL, at most C at
-- once, in one of these shapes:
--   spawn   N tasks spawned at once, each one fetch, on
--           corio.session{max_connections = C}: the session's queue
--           holds the N - C that wait
--   nolimit N tasks spawned at once on a session without a limit
--   workers C worker tasks, each fetching one URL after the other
--           (bench/fetch.lua's loop) on a session without a limit
--   gate    N tasks spawned at once, each waiting for one of C permits
--           of a corio.semaphore before it fetches, on a session
--           without a limit: the floor for `spawn`, N waiting tasks and
--           a limit in user code
--   map     corio.map over the N items at concurrency C, on a session
--           without a limit: the target of issue 13's item 7
-- Prints exactly one line:
--   shape=S n=N c=C ok=OK fail=FAIL secs=S rps=R
-- Usage: corio bench/session_queue.lua URL N C spawn|nolimit|workers|gate|map
-- Peak RSS: run it under /usr/bin/time -f %M (KB).
local url, n, c, shape = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
local shapes = {spawn = true, nolimit = true, workers = true, gate = true,
  map = true}
if not (url and n and c and shapes[shape]) then
  io.stderr:write("usage: corio bench/session_queue.lua URL N C " ..
    "spawn|nolimit|workers|gate|map\n")
  os.exit(2)
end
c = math.min(c, n)
local session <close> = corio.session(shape == "spawn" and
  {max_connections = c, max_idle = c} or {max_idle = c})
local opts = {timeout = 120}
local ok, fail = 0, 0

local function one()
  local good, r = pcall(session.get, session, url, opts)
  if good and r.ok then ok = ok + 1 else fail = fail + 1 end
end

local t0 = corio.time()
local tasks = {}
if shape == "workers" then
  local left = n
  local function worker()
    while left > 0 do
      left = left - 1
      one()
    end
  end
  for i = 1, c do tasks[i] = corio.spawn(worker) end
elseif shape == "gate" then
  local permits = corio.semaphore(c)
  local function gated()
    local _ <close> = permits:acquire()
    one()
  end
  for i = 1, n do tasks[i] = corio.spawn(gated) end
elseif shape == "map" then
  local items = {}
  for i = 1, n do items[i] = i end
  tasks[1] = corio.spawn(corio.map, one, items, {concurrency = c, progress = false})
else
  for i = 1, n do tasks[i] = corio.spawn(one) end
end
corio.wait(tasks)
local secs = corio.time() - t0
print(("shape=%s n=%d c=%d ok=%d fail=%d secs=%.3f rps=%.1f")
  :format(shape, n, c, ok, fail, secs, n / secs))
os.exit(fail == 0 and 0 or 1)
