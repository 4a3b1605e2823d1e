-- The corio executable, driven as a user would: a program in a shell.
local corio = require "corio"

local shell = require "tests.lua.support.shell"
local bin, lua, sh, script = shell.bin, shell.lua, shell.sh, shell.script

describe("the corio executable", function()
  it("runs -e with corio as a global, waits at top level", function()
    local out, rc = sh(bin .. [[ -e 'local t = corio.spawn(function(x) corio.sleep(0.01) return x * 2 end, 21) print(t:await())']])
    assert.equal("42\n", out)
    assert.equal(0, rc)
  end)

  it("passes the arg table like lua", function()
    local s = script("print(arg[0] ~= nil, arg[1], arg[2], #arg, ...)")
    local out, rc = sh(bin .. " " .. s .. " a b")
    assert.equal("true\ta\tb\t2\ta\tb\n", out)
    assert.equal(0, rc)
    os.remove(s)
  end)

  it("reads a script from stdin with -", function()
    local out, rc = sh("echo 'print(corio.sleep(0.001, \"stdin\"))' | " .. bin .. " -")
    assert.equal("stdin\n", out)
    assert.equal(0, rc)
  end)

  it("prints its version with -v and loads libraries with -l", function()
    local out = sh(bin .. " -v")
    assert.matches("^corio %d+%.%d+%.%d+, Lua 5%.4", out)
    out = sh(bin .. " -l string -e 'print(type(string))'")
    assert.equal("table\n", out)
  end)

  it("runs the loop after the script until no task is left", function()
    local out, rc = sh(bin .. [[ -e 'corio.spawn(function() corio.sleep(0.02) print("late") end) print("script done")']])
    assert.equal("script done\nlate\n", out)
    assert.equal(0, rc)
  end)

  it("exits 1 with a traceback when the script fails", function()
    local s = script("local function f() error('script failed') end\nf()\n")
    local out, rc = sh(bin .. " " .. s)
    assert.equal(1, rc)
    assert.matches("script failed", out)
    assert.matches("stack traceback", out)
    os.remove(s)
  end)

  it("a failed script cancels what it left: cleanups run, servers close, exit 1", function()
    local s = script([[
local srv = corio.serve{handler = function() return "hi" end}
corio.spawn(function()
  local _ <close> = setmetatable({}, {__close = function() print("cleanup ran") end})
  corio.sleep(60)
end)
corio.sleep(0.01)
error("script failed")
]])
    local t0 = corio.time()
    local out, rc = sh("timeout 20 " .. bin .. " " .. s)
    assert.equal(1, rc)
    assert.matches("script failed", out)
    assert.matches("cleanup ran", out)
    assert.is_true(corio.time() - t0 < 10, "it should not wait for the sleeping task")
    os.remove(s)
  end)

  it("reports a task exception nobody retrieved, at exit", function()
    local out, rc = sh(bin .. [[ -e 'corio.spawn(function() error("lost error") end)']])
    assert.equal(0, rc)
    assert.matches("Task exception was never retrieved", out)
    assert.matches("lost error", out)
  end)

  it("Ctrl-C cancels every task, runs their cleanup, lists them, exits 130", function()
    local s = script([[
      local t = corio.spawn(function()
        local ok, e = pcall(corio.sleep, 30)
        print("cleanup ran", e.name)
        error(e)
      end)
      t:set_name("sleeper")
      print("ready") io.stdout:flush()
      t:await()
    ]])
    local out, rc = sh("(" .. bin .. " " .. s .. " & pid=$!; sleep 0.5; kill -INT $pid; wait $pid)")
    assert.equal(130, rc)
    assert.matches("ready", out)
    assert.matches("interrupted", out)
    assert.matches("<Task pending name='sleeper'", out)
    assert.matches("cleanup ran\tCancelledError", out)
    os.remove(s)
  end)

  it("SIGTERM does what Ctrl-C does and exits 143", function()
    local s = script([[
      local t = corio.spawn(function()
        local ok, e = pcall(corio.sleep, 30)
        print("cleanup ran", e.name) io.stdout:flush()
        error(e)
      end)
      t:set_name("service")
      print("ready") io.stdout:flush()
      t:await()
    ]])
    local log = os.tmpname()
    -- TERM once "ready" is out (at most 10 s of polling); a guard kills
    -- corio after 10 s more if the signal did not stop it
    local _, rc = sh("(" .. bin .. " " .. s .. " >" .. log .. " 2>&1 & pid=$!; " ..
      "for i in $(seq 100); do grep -q ready " .. log .. " && break; sleep 0.1; done; " ..
      "kill -TERM $pid; (sleep 10; kill -KILL $pid) >/dev/null 2>&1 & guard=$!; " ..
      "wait $pid; rc=$?; kill $guard 2>/dev/null; exit $rc)")
    local f = assert(io.open(log))
    local out = f:read("a")
    f:close()
    os.remove(log)
    assert.equal(143, rc, out)
    assert.matches("terminated; cancelling the pending tasks", out)
    assert.matches("<Task pending name='service'", out)
    assert.matches("cleanup ran\tCancelledError", out)
    os.remove(s)
  end)

  it("SIGTERM with nothing pending but the script's own wait ends quietly with 143", function()
    local log = os.tmpname()
    local _, rc = sh("(" .. bin .. [[ -e 'print("ready") io.stdout:flush() corio.sleep(30)' >]] .. log ..
      " 2>&1 & pid=$!; for i in $(seq 100); do grep -q ready " .. log .. " && break; sleep 0.1; done; " ..
      "kill -TERM $pid; wait $pid)")
    local f = assert(io.open(log))
    local out = f:read("a")
    f:close()
    os.remove(log)
    assert.equal(143, rc, out)
    assert.equal("ready\n", out) -- no traceback, no empty list
  end)

  it("Ctrl-C lists 20 pending tasks, then counts the rest by name or function", function()
    local s = script([[
      local function worker() corio.sleep(30) end
      for _ = 1, 1100 do corio.spawn(worker) end
      for _ = 1, 5 do corio.spawn(worker):set_name("poller") end
      print("ready") io.stdout:flush()
      corio.sleep(30)
    ]])
    local log = os.tmpname()
    local _, rc = sh("(" .. bin .. " " .. s .. " >" .. log .. " 2>&1 & pid=$!; " ..
      "for i in $(seq 100); do grep -q ready " .. log .. " && break; sleep 0.1; done; " ..
      "kill -INT $pid; (sleep 10; kill -KILL $pid) >/dev/null 2>&1 & guard=$!; " ..
      "wait $pid; rc=$?; kill $guard 2>/dev/null; exit $rc)")
    local f = assert(io.open(log))
    local out = f:read("a")
    f:close()
    os.remove(log)
    os.remove(s)
    assert.equal(130, rc, out)
    local _, listed = out:gsub("\n  <Task pending", "")
    assert.equal(20, listed, out)
    assert.matches("\n  %.%.%. and 1,085 more:\n    1,080 x coro=worker at [^\n]+:1\n    5 x name='poller'\n", out)
  end)

  it("reports a failed task nobody awaited when it is collected, not only at exit", function()
    local out, rc = sh(bin .. [[ -e 'do corio.spawn(function() error("lost") end):set_name("fetcher") end
      corio.sleep(0.01) collectgarbage() collectgarbage() print("collected") io.stdout:flush()']])
    assert.equal(0, rc)
    assert.matches("Task exception was never retrieved\nfuture: <Task finished name='fetcher' " ..
      "exception='[^\n]*lost'>.*\ncollected\n", out)
  end)

  it("Ctrl-C stops a busy loop, at top level, in a task or in a done callback, as lua.c does", function()
    for _, code in ipairs({
      "print('ready') io.stdout:flush() while true do end",
      "corio.spawn(function() print('ready') io.stdout:flush() while true do end end) corio.sleep(30)",
      "corio.spawn(function() end):add_done_callback(function() print('ready') io.stdout:flush() " ..
        "while true do end end) corio.sleep(30)",
    }) do
      local s = script(code)
      -- one SIGINT to corio itself (timeout(1) would pass a second one on
      -- to its process group: a second Ctrl-C kills, as in lua.c); a guard
      -- kills it after 10 s if that one did not stop it
      local out, rc = sh("(" .. bin .. " " .. s .. " & pid=$!; sleep 0.5; kill -INT $pid; " ..
        "(sleep 10; kill -KILL $pid) >/dev/null 2>&1 & guard=$!; wait $pid; rc=$?; " ..
        "kill $guard 2>/dev/null; exit $rc)")
      assert.equal(130, rc, out)
      assert.matches("ready", out)
      assert.matches("interrupted!", out)
      os.remove(s)
    end
  end)

  it("a REPL line may wait", function()
    local out, rc = sh("printf 'x = corio.sleep(0.01, 5)\\nprint(x * 2)\\n' | " .. bin .. " -i")
    assert.equal(0, rc)
    assert.matches("10", out)
  end)
end)

describe("the module in plain lua5.4", function()
  it("loads with require and waits at top level", function()
    local dir = bin:match("^(.*)/[^/]*$") or "."
    local out, rc = sh(lua .. [[ -e 'package.cpath="]] .. dir .. [[/?.so;"..package.cpath local corio=require "corio" print(corio.sleep(0.01, "ok"))']])
    assert.equal("ok\n", out)
    assert.equal(0, rc)
  end)
end)
