-- The in-process parts of bench/soak.sh: a long run of one kind of work,
-- with the process's RSS, Lua heap and descriptor count sampled every 10%.
--   corio bench/soak.lua fetch URL N C   N fetches of URL by C worker tasks
--                                         on one keep-alive session
--   corio bench/soak.lua tasks N W       N tasks, in waves of W created at
--                                         once and all finished before the next
-- Prints one line per sample:
--   sample pct=10 done=100000 secs=4.1 rss_kb=12345 lua_kb=456 fds=9
local mode = arg[1]

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local pid
do
  local f = assert(io.open("/proc/self/stat"))
  pid = f:read("a"):match("^(%d+)")
  f:close()
end
local count_file = os.tmpname()
local function fds()
  -- counted by a shell through system(), which leaves no descriptor of its
  -- own here (io.popen's pipe is in the listing half the time)
  os.execute("ls /proc/" .. pid .. "/fd | wc -l > " .. count_file)
  local f = assert(io.open(count_file))
  local n = tonumber(f:read("a"))
  f:close()
  return n
end

local t0 = corio.time()
local function sample(pct, done)
  collectgarbage("collect") -- what is live, not what the collector has not reached
  print(("sample pct=%d done=%d secs=%.1f rss_kb=%d lua_kb=%d fds=%d"):format(
    pct, done, corio.time() - t0, rss_kb(), math.floor(collectgarbage("count")), fds()))
  io.stdout:flush()
end

if mode == "fetch" then
  local url, n, c = arg[2], tonumber(arg[3]), tonumber(arg[4])
  local session <close> = corio.session {max_idle = c}
  local opts = {timeout = 120}
  local started, done, fail, next_pct = 0, 0, 0, 10
  local function worker()
    while started < n do
      started = started + 1
      local good, r = pcall(session.get, session, url, opts)
      if not (good and r.ok) then fail = fail + 1 end
      done = done + 1
      if done * 100 >= next_pct * n then
        local pct = next_pct
        next_pct = next_pct + 10
        sample(pct, done)
      end
    end
  end
  sample(0, 0)
  local tasks = {}
  for i = 1, c do tasks[i] = corio.spawn(worker) end
  corio.wait(tasks)
  print(("fetch done n=%d fail=%d"):format(done, fail))
  os.remove(count_file)
  os.exit(fail == 0 and 0 or 1)
elseif mode == "tasks" then
  local n, w = tonumber(arg[2]), tonumber(arg[3])
  local done, next_pct = 0, 10
  local function work(i)
    corio.sleep(0) -- each task yields once: it is scheduled, parked, resumed
    return i
  end
  sample(0, 0)
  while done < n do
    local wave = {}
    for i = 1, math.min(w, n - done) do wave[i] = corio.spawn(work, i) end
    corio.gather(wave)
    done = done + #wave
    wave = nil
    while done * 100 >= next_pct * n do
      sample(next_pct, done)
      next_pct = next_pct + 10
    end
  end
  print(("tasks done n=%d"):format(done))
  os.remove(count_file)
else
  io.stderr:write("usage: corio bench/soak.lua fetch URL N C | tasks N W\n")
  os.exit(2)
end
