-- Rows of the fault matrix (docs/reliability.md) that had no test: a
-- thread item that never ends when the state closes (fault 39), and a
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
