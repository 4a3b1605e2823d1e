-- Rows of the fault matrix (docs/reliability.md) that had no test: a
-- thread item that never ends when the state closes (fault 46), and a
-- task that runs without yielding past its CPU budget (fault 20).
local shell = require "tests.lua.support.shell"

-- Run `code` with `runner` (plain lua5.4 or the corio executable) under a
-- time bound; return its output and exit status.
local function run(runner, code, bound)
  local s = shell.script(code)
  local out, rc = shell.sh(("timeout -k 5 %d %s %s"):format(bound or 60, runner, s))
  os.remove(s)
  return out, rc
end

-- plain lua5.4 finds the module in the build directory
local function lua_prelude()
  local dir = shell.bin:match("^(.*)/[^/]*$") or "."
  return ("package.cpath = %q .. '/?.so;' .. package.cpath\n"):format(dir)
end

describe("a thread item that never ends", function()
  local NEVER = [[
local corio = require "corio"
local t = corio.spawn(corio.to_thread, function() while true do end end)
local m = corio.spawn(corio.threads.map, function(x) while true do end end, {1, 2, 3},
  {threads = 2})
corio.sleep(0.2)
print("script ends; lua_close next")
]]

  it("does not stop lua_close: the worker's Lua is interrupted (plain lua5.4)", function()
    local out, rc = run(shell.lua, lua_prelude() .. NEVER)
    assert.matches("script ends; lua_close next", out)
    assert.equal(0, rc, out)
  end)

  it("does not stop os.exit(status, true) nor SIGTERM in the corio executable", function()
    local out, rc = run(shell.bin, NEVER .. "os.exit(3, true)\n")
    assert.matches("script ends; lua_close next", out)
    assert.equal(3, rc, out)
    -- the executable runs the loop while a task is pending: SIGTERM
    -- cancels the tasks, then closes the state
    local job = shell.bg(shell.bin .. " -e " .. ("%q"):format(
      "local t = corio.spawn(corio.to_thread, function() while true do end end) " ..
      "corio.sleep(0.1) print('running') io.stdout:flush()"))
    local pid
    for _ = 1, 500 do
      local f = io.open(job.base .. ".out")
      local s = f and f:read("a") or ""
      if f then f:close() end
      if s:find("running") then break end
      corio.sleep(0.02)
    end
    local p = io.popen("pgrep -P " .. job.pid)
    local sh_pid = p:read("l")
    p:close()
    p = io.popen("pgrep -P " .. tostring(sh_pid))
    pid = p:read("l")
    p:close()
    assert.is_not_nil(pid, "the corio process")
    os.execute("kill -TERM " .. pid)
    local _, status = shell.finish(job, 60)
    assert.equal(143, status)
  end)
end)

describe("a task that runs without yielding (corio.set_task_budget)", function()
  after_each(function() corio.set_task_budget(nil) end)

  it("fails with a BudgetError where it loops; the other tasks go on", function()
    local ticks = 0
    local ticker = corio.spawn(function()
      for _ = 1, 20 do corio.sleep(0.01); ticks = ticks + 1 end
    end)
    assert.is_nil(corio.set_task_budget(0.2))
    local busy = corio.spawn(function()
      local n = 0
      while true do n = n + 1 end -- never yields
    end)
    local ok, err = pcall(corio.await, busy)
    assert.is_false(ok)
    assert.is_true(err == corio.BudgetError)
    assert.equal("budget", err.kind)
    assert.matches("without yielding", tostring(err))
    assert.matches("faults_spec.lua", busy:traceback() or tostring(busy:exception()) or "")
    ticker:await()
    assert.equal(20, ticks)
    assert.equal(0.2, corio.set_task_budget(nil))
  end)

  it("leaves alone a task that yields in time, top-level code and plain coroutines", function()
    corio.set_task_budget(0.2)
    local t = corio.spawn(function()
      local t0 = corio.time()
      while corio.time() - t0 < 0.6 do -- 0.6 s of work, yielding every 10 ms
        local t1 = corio.time()
        while corio.time() - t1 < 0.01 do end
        corio.sleep(0)
      end
      return "done"
    end)
    assert.equal("done", t:await())
    -- top level is no task
    local t0 = corio.time()
    while corio.time() - t0 < 0.4 do end
    -- a coroutine made inside a task inherits no stale budget afterwards
    local co = corio.spawn(function() return coroutine.create(function()
      local t1 = corio.time()
      while corio.time() - t1 < 0.4 do end
      return "ran"
    end) end):await()
    assert.same({true, "ran"}, {coroutine.resume(co)})
  end)

  it("checks its argument; nil or a year and more turn it off", function()
    assert.has_error(function() corio.set_task_budget(0) end)
    assert.has_error(function() corio.set_task_budget(-1) end)
    assert.has_error(function() corio.set_task_budget(0 / 0) end)
    assert.has_error(function() corio.set_task_budget("x") end)
    assert.is_nil(corio.set_task_budget(math.huge))
    assert.is_nil(corio.set_task_budget(nil))
  end)
end)

describe("a second Ctrl-C", function()
  it("kills at once while the first one's cleanup still runs (fault 21)", function()
    local s = shell.script([[
      local t = corio.spawn(function()
        pcall(corio.sleep, 30)
        print("cleanup started") io.stdout:flush()
        corio.sleep(30) -- a cleanup that takes its time
        print("cleanup finished")
      end)
      print("ready") io.stdout:flush()
      t:await()
    ]])
    local log = os.tmpname()
    -- INT once "ready" is out, again once the cleanup runs (each wait at
    -- most 10 s); a guard kills corio with KILL (137) after 20 s more
    local _, rc = shell.sh("(" .. shell.bin .. " " .. s .. " >" .. log .. " 2>&1 & pid=$!; " ..
      "for i in $(seq 100); do grep -q ready " .. log .. " && break; sleep 0.1; done; " ..
      "kill -INT $pid; " ..
      "for i in $(seq 100); do grep -q 'cleanup started' " .. log .. " && break; sleep 0.1; done; " ..
      "kill -INT $pid; (sleep 20; kill -KILL $pid) >/dev/null 2>&1 & guard=$!; " ..
      "wait $pid; rc=$?; kill $guard 2>/dev/null; exit $rc)")
    local f = assert(io.open(log))
    local out = f:read("a")
    f:close()
    os.remove(log)
    os.remove(s)
    assert.matches("cleanup started", out)
    assert.is_nil(out:find("cleanup finished"))
    assert.equal(130, rc) -- killed by SIGINT (128 + 2), not by the guard
  end)
end)
