-- Tasks, futures and coroutine objects (busted, run under the corio executable).
local corio = require "corio"

describe("tasks", function()
  it("spawn runs a function with its arguments and await returns all results", function()
    local t = corio.spawn(function(a, b) corio.sleep(0.001) return a + b, "x" end, 40, 2)
    local r, x = t:await()
    assert.equal(42, r)
    assert.equal("x", x)
    assert.same({42, "x"}, {t:result()})
  end)

  it("starts tasks in spawn order, on the next turn of the loop", function()
    local log = {}
    for i = 1, 5 do corio.spawn(function() log[#log + 1] = i end) end
    assert.same({}, log) -- nothing runs until the loop does
    corio.sleep(0)
    assert.same({1, 2, 3, 4, 5}, log)
  end)

  it("wakes equal sleeps in the order they started", function()
    local log, ts = {}, {}
    for i = 1, 10 do ts[i] = corio.spawn(function() corio.sleep(0.005) log[#log + 1] = i end) end
    corio.wait(ts)
    assert.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, log)
  end)

  it("has states and asyncio-like tostring", function()
    local function get_number(x) corio.sleep(0.001) return x end
    _G.get_number = get_number
    local t = corio.spawn(get_number, 7)
    assert.is_false(t:done())
    assert.matches("^<Task pending name='Task%-%d+' coro=get_number at .-task_spec.lua:%d+>$", tostring(t))
    _G.get_number = nil
    t:await()
    assert.is_true(t:done())
    assert.matches("^<Task finished name='Task%-%d+' result=7>$", tostring(t))
    t:set_name("seven")
    assert.equal("seven", t:get_name())
    assert.matches("name='seven'", tostring(t))
  end)

  it("reading a field no task has raises, naming it", function()
    local t = corio.spawn(function() return 1 end)
    local ok, err = pcall(function() return t.status end)
    assert.is_false(ok)
    assert.matches("Task has no field 'status' %(did you mean to await it%?%)", err)
    local f = corio.future()
    ok, err = pcall(function() return f.reslt end)
    assert.matches("Task has no field 'reslt'", err)
    f:cancel() -- no task left behind for the specs that count them
    assert.equal(1, t:await())
  end)

  it("result() before done raises InvalidStateError", function()
    local t = corio.spawn(corio.sleep, 0.01)
    local ok, err = pcall(t.result, t)
    assert.is_false(ok)
    assert.equal("InvalidStateError", err.name)
    assert.is_true(err == corio.InvalidStateError)
    t:await()
  end)

  it("a failed task keeps its error and traceback", function()
    local t = corio.spawn(function() local x = nil; return x.field end)
    corio.wait({t})
    local err = t:exception()
    assert.matches("attempt to index", err)
    assert.matches("stack traceback", t:traceback())
    local ok, e2 = pcall(t.result, t)
    assert.is_false(ok)
    assert.equal(err, e2)
  end)

  it("cancels a sleeping task; CancelledError reaches it and <close> runs", function()
    local closed, seen = false, nil
    local t = corio.spawn(function()
      local guard <close> = setmetatable({}, {__close = function() closed = true end})
      local ok, e = pcall(corio.sleep, 60)
      seen = e
      error(e)
    end)
    corio.sleep(0.001)
    assert.is_true(t:cancel("stop now"))
    corio.wait({t})
    assert.is_true(t:cancelled())
    assert.is_true(closed)
    assert.equal("CancelledError", seen.name)
    assert.equal("stop now", seen.message)
    assert.matches("^<Task cancelled", tostring(t))
    assert.is_false(t:cancel())
    local ok, err = pcall(t.result, t)
    assert.is_false(ok)
    assert.is_true(err == corio.CancelledError)
  end)

  it("a task cancelled before it starts never runs", function()
    local ran = false
    local t = corio.spawn(function() ran = true end)
    t:cancel()
    corio.wait({t})
    assert.is_false(ran)
    assert.is_true(t:cancelled())
  end)

  it("cancelling a task that awaits another cancels both (as asyncio)", function()
    local inner = corio.spawn(corio.sleep, 60)
    local outer = corio.spawn(function() return inner:await() end)
    corio.sleep(0.001)
    outer:cancel()
    corio.wait({outer, inner})
    assert.is_true(outer:cancelled())
    assert.is_true(inner:cancelled())
  end)

  it("a task can catch its cancellation and go on", function()
    local t = corio.spawn(function()
      local ok = pcall(corio.sleep, 60)
      corio.sleep(0.001) -- waits again after the cancel was delivered
      return ok and "slept" or "caught"
    end)
    corio.sleep(0.001)
    t:cancel()
    assert.equal("caught", t:await())
    assert.is_false(t:cancelled())
  end)

  it("done callbacks run in the order added; removed ones do not run", function()
    local log = {}
    local t = corio.spawn(corio.sleep, 0.001, "v")
    local function a(task) log[#log + 1] = "a:" .. task:result() end
    local function b() log[#log + 1] = "b" end
    local function c() log[#log + 1] = "c" end
    t:add_done_callback(a)
    t:add_done_callback(b)
    t:add_done_callback(c)
    assert.equal(1, t:remove_done_callback(b))
    t:await()
    assert.same({"a:v", "c"}, log)
    t:add_done_callback(b) -- already done: runs at the next turn
    assert.same({"a:v", "c"}, log)
    corio.sleep(0)
    assert.same({"a:v", "c", "b"}, log)
  end)

  it("an error in a done callback is reported and the loop goes on", function()
    local after = false
    local t = corio.spawn(corio.sleep, 0.001)
    t:add_done_callback(function() error("callback boom") end)
    t:add_done_callback(function() after = true end)
    t:await()
    assert.is_true(after)
    assert.equal("done", corio.sleep(0.001, "done"))
  end)

  it("waiting inside a done callback raises a clear error", function()
    local msg
    local t = corio.spawn(corio.sleep, 0.001)
    t:add_done_callback(function() msg = select(2, pcall(corio.sleep, 0.01)) end)
    t:await()
    assert.matches("spawn a task instead", msg)
  end)

  it("one task's failure does not take down another", function()
    local bad = corio.spawn(function() corio.sleep(0.001) error("bad") end)
    local good = corio.spawn(function() corio.sleep(0.005) return "good" end)
    assert.equal("good", good:await())
    assert.is_truthy(bad:exception())
  end)
end)

describe("coroutine objects and futures", function()
  it("corio.async makes coroutine objects that run only when scheduled", function()
    local ran = 0
    local get = corio.async(function(x) ran = ran + 1 corio.sleep(0.001) return x end)
    local co = get(5)
    -- named by the local that holds the corio.async wrapper, as Python
    -- names a coroutine object by its async def
    assert.matches("^<coroutine get at .-task_spec.lua:175 pending>$", tostring(co))
    corio.sleep(0.002)
    assert.equal(0, ran)
    local t = corio.ensure_future(co)
    assert.equal(5, t:await())
    assert.equal(1, ran)
    assert.has_error(function() corio.ensure_future(co) end)
    assert.equal(6, corio.await(get(6)))
    assert.equal(7, corio.create_task(get(7)):await())
  end)

  it("awaiting a coroutine object inside a task runs it inline, in that task", function()
    local inner = corio.async(function(a, b)
      local me = corio.current_task()
      corio.sleep(0.001)
      return a + b, me
    end)
    local log = {}
    local outer = corio.spawn(function()
      local other = corio.spawn(function() log[#log + 1] = "other" end)
      local co = inner(2, 3)
      log[#log + 1] = "before"
      local sum, ran_in = corio.await(co)
      assert.equal(corio.current_task(), ran_in) -- no task of its own
      assert.has_error(function() corio.await(co) end,
                       "corio: this coroutine object was already scheduled")
      other:await()
      return sum
    end)
    assert.equal(5, outer:await())
    assert.same({"before", "other"}, log)
    local failing = corio.async(function() error("inner boom", 0) end)
    local t = corio.spawn(function() return corio.await(failing()) end)
    assert.has_error(function() t:await() end, "inner boom")
  end)

  it("ensure_future returns tasks and futures unchanged", function()
    local f = corio.future()
    assert.equal(f, corio.ensure_future(f))
    f:cancel()
  end)

  it("a future is completed from outside; set twice is an error", function()
    local f = corio.future()
    assert.equal("<Future pending>", tostring(f))
    corio.spawn(function() corio.sleep(0.001) f:set_result(1, 2) end)
    assert.same({1, 2}, {f:await()})
    assert.equal("<Future finished result=1, 2>", tostring(f))
    local ok, err = pcall(f.set_result, f, 3)
    assert.is_false(ok)
    assert.equal("InvalidStateError", err.name)
    local g = corio.future()
    g:set_exception("nope")
    assert.equal("nope", g:exception())
  end)

  it("current_task is the running task, nil at top level", function()
    assert.is_nil(corio.current_task())
    local t
    t = corio.spawn(function() return corio.current_task() == t end)
    assert.is_true(t:await())
  end)

  it("a task cannot await itself", function()
    local t
    t = corio.spawn(function() return pcall(corio.await, t) end)
    local ok, err = t:await()
    assert.is_false(ok)
    assert.matches("cannot await itself", err)
  end)
end)
