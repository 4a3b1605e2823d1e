-- Waiting and time: sleep, wait, gather, as_completed, wait_for, timeout,
-- and waits in every place a Lua program can be.
local corio = require "corio"

local function sleeper(s, v) return corio.spawn(corio.sleep, s, v) end

describe("sleep", function()
  it("returns its value, at top level and in a task", function()
    assert.equal("ok", corio.sleep(0.001, "ok"))
    assert.equal("in", corio.spawn(corio.sleep, 0.001, "in"):await())
  end)

  it("takes about as long as asked, and tasks sleep concurrently", function()
    local t0 = corio.time()
    local ts = {}
    for i = 1, 50 do ts[i] = sleeper(0.05) end
    corio.wait(ts)
    local dt = corio.time() - t0
    assert.is_true(dt >= 0.049, dt)
    assert.is_true(dt < 2.0, dt) -- 50 x 50 ms one after another would be 2.5 s
  end)

  it("rejects bad durations with a clear error", function()
    assert.has_error(function() corio.sleep(-1) end)
    assert.has_error(function() corio.sleep("soon") end)
    local ok, err = pcall(corio.sleep, 0 / 0)
    assert.is_false(ok)
    assert.matches("seconds", err)
  end)
end)

describe("wait", function()
  it("ALL_COMPLETED returns done and pending in input order", function()
    local ts = {sleeper(0.003, 1), sleeper(0.001, 2), sleeper(0.002, 3)}
    local done, pending = corio.wait(ts)
    assert.equal(3, #done)
    assert.equal(0, #pending)
    assert.equal(ts[1], done[1])
    assert.equal(ts[3], done[3])
  end)

  it("FIRST_COMPLETED returns as soon as one is done", function()
    local ts = {sleeper(0.2), sleeper(0.001), sleeper(0.3)}
    local done, pending = corio.wait(ts, {return_when = "FIRST_COMPLETED"})
    assert.same({ts[2]}, done)
    assert.same({ts[1], ts[3]}, pending)
    for _, t in ipairs(pending) do t:cancel() end
  end)

  it("FIRST_EXCEPTION returns at the first failure", function()
    local bad = corio.spawn(function() corio.sleep(0.002) error("x") end)
    local ts = {sleeper(0.3), bad, sleeper(0.001)}
    local done, pending = corio.wait(ts, {return_when = "FIRST_EXCEPTION"})
    assert.same({bad, ts[3]}, done)
    assert.same({ts[1]}, pending)
    ts[1]:cancel()
    bad:exception()
  end)

  it("a timeout returns what is done and cancels nothing", function()
    local slow = sleeper(0.3)
    local done, pending = corio.wait({sleeper(0.001), slow}, {timeout = 0.02})
    assert.equal(1, #done)
    assert.same({slow}, pending)
    assert.is_false(slow:cancelled())
    slow:cancel()
  end)

  it("rejects a bad return_when", function()
    assert.has_error(function() corio.wait({}, {return_when = "SOMETIMES"}) end)
  end)

  it("waits on coroutine objects and an empty list", function()
    local f = corio.async(function() return 1 end)
    local done = corio.wait({f()})
    assert.equal(1, done[1]:result())
    local d2, p2 = corio.wait({})
    assert.same({}, d2)
    assert.same({}, p2)
  end)
end)

describe("gather", function()
  it("returns first results in argument order, varargs or a list", function()
    local r = corio.gather(sleeper(0.003, "a"), sleeper(0.001, "b"))
    assert.same({"a", "b", n = 2}, r)
    r = corio.gather({sleeper(0.001, 1), sleeper(0.002, 2), sleeper(0, 3)})
    assert.same({1, 2, 3, n = 3}, r)
  end)

  it("takes each task's first result when it returns several", function()
    local several = corio.spawn(function() corio.sleep(0) return 2, 3 end)
    local none = corio.spawn(function() corio.sleep(0) end)
    local r = corio.gather(several, none, sleeper(0, "x"))
    assert.same({2, nil, "x", n = 3}, r)
    assert.same({2, 3}, {several:result()})
  end)

  it("raises the first error, or returns it with return_exceptions", function()
    local function fails() corio.sleep(0.001) error("gather boom", 0) end
    local ok, err = pcall(corio.gather, corio.spawn(fails), sleeper(0.001, 1))
    assert.is_false(ok)
    assert.equal("gather boom", err)
    local r = corio.gather(corio.spawn(fails), sleeper(0.001, 1), {return_exceptions = true})
    assert.equal("gather boom", r[1])
    assert.equal(1, r[2])
  end)

  it("cancelling a gather cancels its children", function()
    local a, b = sleeper(60), sleeper(60)
    local g = corio.spawn(corio.gather, a, b)
    corio.sleep(0.001)
    g:cancel()
    corio.wait({g, a, b})
    assert.is_true(a:cancelled() and b:cancelled() and g:cancelled())
  end)
end)

describe("as_completed", function()
  it("yields tasks in completion order, at top level and in a task", function()
    local order = {}
    for t in corio.as_completed({sleeper(0.03, "c"), sleeper(0.01, "a"), sleeper(0.02, "b")}) do
      order[#order + 1] = t:result()
    end
    assert.same({"a", "b", "c"}, order)
    local inside = corio.spawn(function()
      local o = {}
      for t in corio.as_completed({sleeper(0.02, 2), sleeper(0.01, 1)}) do o[#o + 1] = t:result() end
      return o
    end)
    assert.same({1, 2}, inside:await())
  end)

  it("raises TimeoutError when the timeout passes", function()
    local slow = sleeper(0.5)
    local ok, err = pcall(function()
      for _ in corio.as_completed({slow}, {timeout = 0.01}) do end
    end)
    assert.is_false(ok)
    assert.is_true(err == corio.TimeoutError)
    slow:cancel()
  end)
end)

describe("wait_for and timeout", function()
  it("wait_for returns the results in time", function()
    assert.equal(5, corio.wait_for(sleeper(0.001, 5), 1))
  end)

  it("wait_for cancels the task and raises TimeoutError when late", function()
    local t = sleeper(10)
    local ok, err = pcall(corio.wait_for, t, 0.01)
    assert.is_false(ok)
    assert.equal("TimeoutError", err.name)
    assert.is_true(t:cancelled())
  end)

  it("timeout runs fn in the current task under a deadline", function()
    assert.same({1, 2}, {corio.timeout(1, function(a) corio.sleep(0.001) return a, 2 end, 1)})
    local cleaned = false
    local ok, err = pcall(corio.timeout, 0.01, function()
      local ok2, e = pcall(corio.sleep, 10)
      cleaned = true
      error(e)
    end)
    assert.is_false(ok)
    assert.is_true(err == corio.TimeoutError)
    assert.is_true(cleaned)
    -- the task goes on normally after a timeout
    assert.equal("after", corio.sleep(0.001, "after"))
  end)

  it("a cancel from outside in the deadline's own turn is not taken for the timeout", function()
    -- b's sleep and a's deadline end in the same turn, b's first: the
    -- deadline's cancel and b's both reach a before it runs again
    for _ = 1, 5 do
      local got, a
      local b = corio.spawn(function()
        corio.sleep(0.005)
        a:cancel()
      end)
      a = corio.spawn(function()
        local _, e = pcall(corio.timeout, 0.005, corio.sleep, 1)
        got = e.name
      end)
      corio.wait({a, b})
      assert.equal("CancelledError", got)
    end
    -- and a deadline alone still times out after an earlier cancel was caught
    local t = corio.spawn(function()
      pcall(corio.sleep, 1) -- cancelled below, and caught
      local _, e = pcall(corio.timeout, 0.005, corio.sleep, 1)
      return e.name
    end)
    corio.sleep(0)
    t:cancel()
    assert.equal("TimeoutError", t:await())
  end)

  it("errors other than the deadline pass through timeout", function()
    local ok, err = pcall(corio.timeout, 1, function() error("own", 0) end)
    assert.is_false(ok)
    assert.equal("own", err)
  end)
end)

describe("waits everywhere", function()
  it("nested waits: tasks awaiting tasks awaiting tasks", function()
    local function depth(n)
      if n == 0 then return corio.sleep(0.001, 0) end
      return corio.spawn(depth, n - 1):await() + 1
    end
    assert.equal(20, corio.spawn(depth, 20):await())
  end)

  it("inside pcall and xpcall within a task", function()
    local t = corio.spawn(function()
      local ok1, v1 = pcall(corio.sleep, 0.001, "p")
      local ok2, v2 = xpcall(corio.sleep, debug.traceback, 0.001, "x")
      local ok3, e3 = pcall(function() corio.sleep(0.001) error("after wait", 0) end)
      return ok1, v1, ok2, v2, ok3, e3
    end)
    assert.same({true, "p", true, "x", false, "after wait"}, {t:await()})
  end)

  it("inside metamethods and for-in iterators", function()
    local t = corio.spawn(function()
      local lazy = setmetatable({}, {__index = function(_, k) return corio.sleep(0.001, k .. "!") end})
      local function iter(_, i) if i < 3 then corio.sleep(0.001) return i + 1 end end
      local sum = 0
      for i in iter, nil, 0 do sum = sum + i end
      return lazy.x, sum
    end)
    assert.same({"x!", 6}, {t:await()})
  end)

  it("in a plain coroutine resumed by a task, a clear error, never a hang", function()
    local t = corio.spawn(function()
      local gen = coroutine.wrap(function() corio.sleep(0.001) end)
      return pcall(gen)
    end)
    local ok, err = t:await()
    assert.is_false(ok)
    assert.matches("use corio.spawn", err)
  end)

  it("a plain coroutine.yield in a task gives the loop a turn", function()
    local log = {}
    local a = corio.spawn(function() log[#log + 1] = "a1" coroutine.yield() log[#log + 1] = "a2" end)
    local b = corio.spawn(function() log[#log + 1] = "b1" end)
    corio.wait({a, b})
    assert.same({"a1", "b1", "a2"}, log)
  end)

  it("100,000 concurrent sleeping tasks all complete", function()
    local ts = {}
    for i = 1, 100000 do ts[i] = corio.spawn(corio.sleep, 0.01, i) end
    local done, pending = corio.wait(ts)
    assert.equal(100000, #done)
    assert.equal(0, #pending)
    assert.equal(100000, ts[100000]:result())
    assert.equal(0, corio.stats().tasks)
  end)
end)
