-- The binding's C code makes, cancels and completes tasks through its own
-- C API, never through the module's Lua functions or the Task methods: a
-- script that replaces them changes nothing else.
local corio = require "corio"

local function broken() error("x") end

-- run f with t[k] replaced by a function that raises, then restore it
local function with_broken(t, keys, f)
  local saved = {}
  for _, k in ipairs(keys) do saved[k] = t[k]; t[k] = broken end
  local ok, err = pcall(f)
  for _, k in ipairs(keys) do t[k] = saved[k] end
  assert(ok, err)
end

describe("C code does not call the module's Lua functions", function()
  it("corio.run does not use corio.spawn", function()
    with_broken(corio, {"spawn", "create_task", "future"}, function()
      assert.equal(42, corio.run(function(a) return a end, 42))
    end)
  end)

  it("loop:create_task does not use corio.spawn", function()
    local loop = corio.get_event_loop()
    with_broken(corio, {"spawn", "create_task"}, function()
      local t = loop:create_task(function(a, b) return a + b end, 1, 2)
      assert.equal(3, loop:run_until_complete(t))
    end)
  end)

  it("corio.serve and server:close do not use corio.spawn, corio.future or Task methods", function()
    local f = corio.future()
    local methods = getmetatable(f).__index
    f:cancel() -- a pending future counts as a task
    with_broken(corio, {"spawn", "future"}, function()
      with_broken(methods, {"cancel", "set_result", "set_exception"}, function()
        local s = corio.serve{port = 0, handler = function() return "hi" end}
        local res = corio.get(s.url)
        assert.equal(200, res.status)
        assert.equal("hi", res.body)
        s:close(0) -- waits for the closed future, which on_closed completes
        assert.is_true(s.closed)
      end)
    end)
  end)
end)

describe("the task API", function()
  it("cancels with a message, as t:cancel(msg) does", function()
    local t = corio.spawn(corio.sleep, 10)
    corio.sleep(0)
    assert.is_true(t:cancel("because"))
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.equal("CancelledError", err.name)
    assert.equal("because", err.message)
    assert.is_false(t:cancel("again"))
  end)

  it("set_result and set_exception refuse a future already done", function()
    local f = corio.future()
    f:set_result(1, 2)
    assert.same({1, 2}, {f:result()})
    local ok, err = pcall(f.set_result, f, 3)
    assert.is_false(ok)
    assert.equal("invalid_state", err.kind)
    ok, err = pcall(f.set_exception, f, "e")
    assert.is_false(ok)
    assert.equal("invalid_state", err.kind)
    local g = corio.future()
    g:set_exception("boom")
    ok, err = pcall(g.result, g)
    assert.is_false(ok)
    assert.equal("boom", err)
    assert.matches("set_result is for futures", select(2, pcall(corio.spawn(print).set_result, corio.spawn(print), 1)))
  end)
end)
