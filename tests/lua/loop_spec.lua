-- Running: corio.run, the loop object, errors as values.
local corio = require "corio"

describe("corio.run", function()
  it("runs a main task and returns its results", function()
    assert.same({3, 4}, {corio.run(function(a) corio.sleep(0.001) return a, a + 1 end, 3)})
  end)

  it("raises the main task's error", function()
    local ok, err = pcall(corio.run, function() corio.sleep(0.001) error("main failed", 0) end)
    assert.is_false(ok)
    assert.equal("main failed", err)
  end)

  it("cannot be called from inside the running loop", function()
    local ok, err = corio.spawn(function() return pcall(corio.run, function() end) end):await()
    assert.is_false(ok)
    assert.matches("already running", err)
  end)
end)

describe("get_event_loop", function()
  local loop = corio.get_event_loop()

  it("creates tasks and runs them until complete", function()
    local t = loop:create_task(function(x) corio.sleep(0.001) return x end, 9)
    assert.equal(9, loop:run_until_complete(t))
    assert.equal(8, loop:run_until_complete(function() return 8 end))
    local co = corio.async(function() return 7 end)()
    assert.equal(7, loop:run_until_complete(co))
  end)

  it("time() is monotonic seconds", function()
    local a = loop:time()
    corio.sleep(0.01)
    assert.is_true(loop:time() - a >= 0.009)
  end)

  it("run_forever runs until stop()", function()
    local ticks = 0
    corio.spawn(function()
      for _ = 1, 3 do corio.sleep(0.001) ticks = ticks + 1 end
      loop:stop()
    end)
    loop:run_forever()
    assert.equal(3, ticks)
    assert.is_false(loop:is_running())
  end)

  it("run_until_complete inside the running loop is an error", function()
    local ok, err = corio.spawn(function() return pcall(loop.run_until_complete, loop, function() end) end):await()
    assert.is_false(ok)
    assert.matches("loop is already running", err)
  end)

  it("a wait that can never finish is a clear deadlock error, not a hang", function()
    local f = corio.future()
    local ok, err = pcall(corio.await, f)
    assert.is_false(ok)
    assert.matches("deadlock", err)
    f:cancel()
  end)
end)

describe("errors", function()
  it("are values with name, kind and message, printable and comparable by kind", function()
    local t = corio.spawn(corio.sleep, 10)
    local ok, err = pcall(corio.wait_for, t, 0.001)
    assert.is_false(ok)
    assert.equal("TimeoutError", err.name)
    assert.equal("timeout", err.kind)
    assert.matches("^TimeoutError: ", tostring(err))
    assert.is_true(err == corio.TimeoutError)
    assert.is_false(err == corio.CancelledError)
  end)

  it("bad arguments raise at once, naming the argument", function()
    assert.has_error(function() corio.spawn(42) end, "bad argument #1 to 'spawn' (function or coroutine object expected, got number)")
    -- Lua names the function 'wait' or 'corio.wait', by where it finds it
    local ok, err = pcall(corio.wait, 42)
    assert.is_false(ok)
    assert.matches("^bad argument #1 to '[%w.]*wait' %(table expected, got number%)$", err)
    ok, err = pcall(corio.wait, {}, 42)
    assert.is_false(ok)
    assert.matches("^bad argument #2 to '[%w.]*wait' %(table expected, got number%)$", err)
    -- await says what it expected and what it got, but not which argument
    -- (issue 12, item 8: a binding fix; this line changes with it)
    assert.has_error(function() corio.await(42) end,
      "corio: expected a task, future, coroutine object or function, got number")
  end)

  pending("await names its argument: bad argument #1 to 'await' (issue 12, item 8)")
end)
