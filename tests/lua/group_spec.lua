-- corio.task_group: structured concurrency with asyncio.TaskGroup's rules.
-- Every wait is bounded: corio.wait with a timeout, or a sleep the group is
-- expected to interrupt (a test that fails takes that long, never forever).
local corio = require "corio"

local shell = require "tests.lua.support.shell"

local until_, wait_all = shell.until_, shell.wait_all

describe("task_group", function()
  it("runs fn in the calling task with its arguments and returns its results", function()
    local outer
    local t = corio.spawn(function()
      outer = corio.current_task()
      return corio.task_group(function(g, a, b)
        assert.equal(outer, corio.current_task())
        return a + b, "two", nil
      end, 40, 2)
    end)
    assert.same({42, "two", nil, n = 3}, table.pack(t:await()))
  end)

  it("waits for every child, and for the children they spawn, once fn returns", function()
    local log = {}
    local r = corio.spawn(function()
      return corio.task_group(function(g)
        local a = g:spawn(function() corio.sleep(0.02) log[#log + 1] = "a" return "A" end)
        g:spawn(function()
          corio.sleep(0.005)
          g:spawn(function() corio.sleep(0.03) log[#log + 1] = "grandchild" end)
          log[#log + 1] = "b"
        end)
        log[#log + 1] = "fn"
        return a
      end)
    end):await()
    assert.same({"fn", "b", "a", "grandchild"}, log)
    assert.equal("A", r:result())
  end)

  it("works at top level: fn runs in a task of its own, waits run the loop", function()
    local log = {}
    local a, b = corio.task_group(function(g, x)
      assert.is_not_nil(corio.current_task())
      local t = g:spawn(function() corio.sleep(0.01) log[#log + 1] = "child" return x end)
      return t:await(), "done"
    end, 7)
    assert.same({7, "done"}, {a, b})
    assert.same({"child"}, log)
  end)

  it("at top level too, a failing child interrupts fn and cancels the others", function()
    local reached, sibling
    local ok, err = pcall(corio.task_group, function(g)
      g:spawn(function() corio.sleep(0.01) error("boom") end)
      sibling = g:spawn(corio.sleep, 5)
      corio.sleep(5)
      reached = true
    end)
    assert.is_false(ok)
    assert.is_nil(reached)
    assert.is_true(sibling:cancelled())
    assert.is_true(err == corio.GroupError)
    assert.matches("boom", err.errors[1])
  end)

  it("the first failure cancels the others and fn, then raises a GroupError", function()
    local log = {}
    local sibling
    local t = corio.spawn(function()
      return corio.task_group(function(g)
        g:spawn(function() corio.sleep(0.01) error("first failure") end)
        sibling = g:spawn(function()
          local ok, e = pcall(corio.sleep, 5)
          log[#log + 1] = "sibling " .. tostring(e.name)
          error(e, 0)
        end)
        local ok, e = pcall(corio.sleep, 5)
        log[#log + 1] = "fn " .. tostring(e.name)
        error(e, 0)
      end)
    end)
    wait_all({t})
    assert.is_true(sibling:cancelled())
    assert.same({"sibling CancelledError", "fn CancelledError"}, log)
    local err = t:exception()
    assert.is_true(err == corio.GroupError)
    assert.equal("GroupError", err.name)
    assert.equal("group", err.kind)
    assert.equal(1, #err.errors)
    assert.matches("first failure", err.errors[1])
    assert.matches("^1 error in a task group, the first: .*first failure", err.message)
    assert.matches("^GroupError: 1 error", tostring(err))
  end)

  it("lists every error in the order they happened, cleanup failures included", function()
    local ok, err = pcall(corio.task_group, function(g)
      g:spawn(function()
        local _, e = pcall(corio.sleep, 5)
        corio.sleep(0.01)
        error({why = "cleanup failed"}) -- after its cancel: an error, not a cancel
      end)
      g:spawn(function() corio.sleep(0.005) error("second child, first error") end)
      g:spawn(function() corio.sleep(0.002) end)
    end)
    assert.is_false(ok)
    assert.equal(2, #err.errors)
    assert.matches("second child, first error", err.errors[1])
    assert.equal("cleanup failed", err.errors[2].why)
    assert.matches("^2 errors in a task group, the first: .*second child", err.message)
  end)

  it("a child failing after fn returned cancels the others", function()
    local other
    local ok, err = pcall(corio.task_group, function(g)
      g:spawn(function() corio.sleep(0.01) error("late") end)
      other = g:spawn(corio.sleep, 5)
      return "fn done"
    end)
    assert.is_false(ok)
    assert.is_true(other:cancelled())
    assert.matches("late", err.errors[1])
  end)

  it("if fn raises, the children are cancelled and waited for, then its error is raised", function()
    local cleaned = false
    local child
    local boom = {reason = "fn failed"}
    local ok, err = pcall(corio.task_group, function(g)
      child = g:spawn(function()
        local _, e = pcall(corio.sleep, 5)
        corio.sleep(0.01)
        cleaned = true
        error(e, 0)
      end)
      corio.sleep(0.001)
      error(boom)
    end)
    assert.is_false(ok)
    assert.is_true(rawequal(boom, err)) -- the very value, not wrapped
    assert.is_true(cleaned)
    assert.is_true(child:cancelled())
  end)

  it("if fn raises and a child failed too, both are in a GroupError", function()
    local ok, err = pcall(corio.task_group, function(g)
      g:spawn(function()
        pcall(corio.sleep, 5)
        error("child cleanup failed")
      end)
      corio.sleep(0.001)
      error("fn failed")
    end)
    assert.is_false(ok)
    assert.is_true(err == corio.GroupError)
    assert.equal(2, #err.errors)
    assert.matches("fn failed", err.errors[1])
    assert.matches("child cleanup failed", err.errors[2])
  end)

  it("cancelled from outside, it cancels every child and waits for their cleanup", function()
    local log, children, started = {}, {}, 0
    local runner = corio.spawn(function()
      return corio.task_group(function(g)
        for i = 1, 3 do
          children[i] = g:spawn(function()
            started = started + 1
            local _, e = pcall(corio.sleep, 5)
            corio.sleep(0.01 * i) -- cleanup that waits
            log[#log + 1] = i
            error(e, 0)
          end)
        end
        corio.sleep(5)
      end)
    end)
    local at_done
    runner:add_done_callback(function() at_done = #log end)
    until_(function() return started == 3 end) -- each in its sleep
    runner:cancel()
    wait_all({runner})
    assert.is_true(runner:cancelled())
    assert.equal(3, at_done) -- every cleanup had finished before the group's task
    assert.same({1, 2, 3}, log)
    for i = 1, 3 do assert.is_true(children[i]:cancelled()) end
  end)

  it("cancelled while it waits for the children (fn returned), it still waits for them", function()
    local cleaned, started, exiting = false, false, false
    local runner = corio.spawn(function()
      return corio.task_group(function(g)
        g:spawn(function()
          started = true
          local _, e = pcall(corio.sleep, 5)
          corio.sleep(0.02)
          cleaned = true
          error(e, 0)
        end)
        exiting = true
      end)
    end)
    until_(function() return started and exiting end)
    runner:cancel()
    runner:cancel() -- twice: still one wait for the children
    wait_all({runner})
    assert.is_true(runner:cancelled())
    assert.is_true(cleaned)
  end)

  it("a child's error counts over a cancel from outside", function()
    local started = false
    local runner = corio.spawn(function()
      return corio.task_group(function(g)
        g:spawn(function()
          started = true
          pcall(corio.sleep, 5)
          error("cleanup error")
        end)
        corio.sleep(5)
      end)
    end)
    until_(function() return started end)
    runner:cancel()
    wait_all({runner})
    local err = runner:exception()
    assert.is_true(err == corio.GroupError)
    assert.matches("cleanup error", err.errors[1])
  end)

  it("fn that catches the group's cancel still ends in the GroupError", function()
    local ok, err = pcall(corio.task_group, function(g)
      g:spawn(function() corio.sleep(0.005) error("child") end)
      local caught = not pcall(corio.sleep, 5)
      assert.is_true(caught)
      return "fn went on"
    end)
    assert.is_false(ok)
    assert.is_true(err == corio.GroupError)
  end)

  it("a child's error is retrieved by the group: no 'never retrieved' report", function()
    local s = shell.script([[
      local ok, err = pcall(corio.task_group, function(g)
        g:spawn(function() error("reported by the group") end)
      end)
      print(ok, err.kind)
      collectgarbage() collectgarbage()
    ]])
    local out, rc = shell.sh(shell.bin .. " " .. s)
    os.remove(s)
    assert.equal(0, rc)
    assert.equal("false\tgroup\n", out)
  end)

  it("g:spawn after the group finished, or while it shuts down, raises", function()
    local saved
    corio.task_group(function(g) saved = g end)
    local ok, err = pcall(saved.spawn, saved, function() end)
    assert.is_false(ok)
    assert.matches("g:spawn: the task group has finished", err)
    local msg
    pcall(corio.task_group, function(g)
      g:spawn(function() error("x") end)
      pcall(corio.sleep, 5)
      msg = select(2, pcall(g.spawn, g, function() end))
    end)
    assert.matches("g:spawn: the task group is shutting down", msg)
  end)

  it("accepts coroutine objects, like corio.spawn", function()
    local co = corio.async(function(x) corio.sleep(0.001) return x * 2 end)
    local r = corio.task_group(function(g) return g:spawn(co(21)):await() end)
    assert.equal(42, r)
  end)

  it("rejects bad input, naming the function and the argument", function()
    local ok, err = pcall(corio.task_group, 42)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'corio.task_group' %(function expected, got 42%)", err)
    corio.task_group(function(g)
      ok, err = pcall(g.spawn, g, "not a function")
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'g:spawn' %(function or coroutine object expected, got \"not a function\"%)", err)
      ok, err = pcall(g.spawn, g)
      assert.matches("got nil", err)
      ok, err = pcall(g.spawn, function() end)
      assert.matches("bad self to 'g:spawn'", err)
    end)
  end)

  it("prints its state", function()
    corio.task_group(function(g)
      g:spawn(corio.sleep, 0.01)
      assert.equal("<corio.TaskGroup running tasks=1 errors=0>", tostring(g))
    end)
  end)
end)
