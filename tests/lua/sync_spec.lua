-- corio.semaphore, corio.lock, corio.event, corio.queue: asyncio's
-- semantics, FIFO waits, and waits that lose nothing when cancelled.
-- Every wait is bounded: corio.wait with a timeout, or until_ (shell.lua).
local corio = require "corio"

local shell = require "tests.lua.support.shell"
local until_, wait_all = shell.until_, shell.wait_all

-- how many wait in obj's line (tostring says), by the name tostring uses
local function waiters(obj, what)
  return tonumber(tostring(obj):match((what or "waiters") .. "=(%d+)")) or 0
end

local function errmsg(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return err
end

describe("semaphore", function()
  it("rejects a bound that is not a positive integer, naming it", function()
    for _, case in ipairs({{0, "0"}, {-1, "-1"}, {"x", '"x"'}, {1.5, "1.5"}, {nil, "nil"}}) do
      local err = errmsg(corio.semaphore, case[1])
      assert.equal("bad argument #1 to 'corio.semaphore' (positive integer expected, got " .. case[2] .. ")", err)
    end
    assert.equal(2, corio.semaphore(2.0):available())
  end)

  it("acquire returns a guard whose <close> releases", function()
    local s = corio.semaphore(2)
    do
      local _ <close> = s:acquire()
      assert.equal(1, s:available())
      local g = s:acquire()
      assert.is_true(s:locked())
      assert.equal("<corio.Semaphore value=0/2 waiters=0>", tostring(s))
      g:release()
      g:release() -- a guard releases once
      assert.equal(1, s:available())
    end
    assert.equal(2, s:available())
    assert.is_false(s:locked())
  end)

  it("releasing past its bound raises, naming the call", function()
    local s = corio.semaphore(3)
    assert.equal("semaphore:release: released more times than acquired (bound 3)", errmsg(s.release, s))
    s:acquire()
    s:release()
    assert.equal(3, s:available())
    local err = errmsg(s.acquire)
    assert.matches("bad self to 'semaphore:acquire' %(corio.Semaphore expected, got nil%)", err)
  end)

  it("lets at most n tasks in at once, in the order they came", function()
    local s = corio.semaphore(3)
    local inside, most, order, ts = 0, 0, {}, {}
    for i = 1, 20 do
      ts[i] = corio.spawn(function()
        local _ <close> = s:acquire()
        order[#order + 1] = i
        inside = inside + 1
        if inside > most then most = inside end
        corio.sleep(0.001 * (i % 4))
        inside = inside - 1
      end)
    end
    wait_all(ts)
    assert.equal(3, most)
    for i = 1, 20 do assert.equal(i, order[i]) end
    assert.equal(3, s:available())
  end)

  it("hands a release to the first waiter: a later acquire does not take it", function()
    local s = corio.semaphore(1)
    local g = s:acquire()
    local log = {}
    local w = corio.spawn(function() local _ <close> = s:acquire() log[#log + 1] = "waiter" end)
    until_(function() return waiters(s) == 1 end)
    g:release()
    assert.equal(0, s:available()) -- already the waiter's
    local late = corio.spawn(function() local _ <close> = s:acquire() log[#log + 1] = "late" end)
    wait_all({w, late})
    assert.same({"waiter", "late"}, log)
    assert.equal(1, s:available())
  end)

  it("a waiter cancelled just as it is handed a permit passes it on", function()
    local s = corio.semaphore(1)
    local g = s:acquire()
    local log = {}
    local w1 = corio.spawn(function() local _ <close> = s:acquire() log[#log + 1] = 1 end)
    local w2 = corio.spawn(function() local _ <close> = s:acquire() log[#log + 1] = 2 end)
    until_(function() return waiters(s) == 2 end)
    g:release() -- w1's now, but it has not run yet
    w1:cancel()
    wait_all({w1, w2})
    assert.is_true(w1:cancelled())
    assert.same({2}, log)
    assert.equal(1, s:available()) -- no permit leaked
  end)

  it("a waiter cancelled before its turn leaves the line", function()
    local s = corio.semaphore(1)
    local g = s:acquire()
    local w = corio.spawn(function() return s:acquire() end)
    until_(function() return waiters(s) == 1 end)
    w:cancel()
    wait_all({w})
    assert.equal(0, waiters(s))
    g:release()
    assert.equal(1, s:available())
  end)

  it("leaks no permit when many acquires time out or are cancelled", function()
    local s = corio.semaphore(4)
    local inside, most, got, ts = 0, 0, 0, {}
    math.randomseed(13)
    for i = 1, 200 do
      local limit = 0.001 * math.random(0, 3)
      ts[i] = corio.spawn(function()
        local ok = pcall(corio.timeout, limit, function()
          local _ <close> = s:acquire()
          inside = inside + 1
          if inside > most then most = inside end
          got = got + 1
          local ok, e = pcall(corio.sleep, 0) -- the deadline may fall here
          inside = inside - 1
          if not ok then error(e, 0) end
        end)
        return ok
      end)
    end
    for i = 1, 200, 7 do ts[i]:cancel() end
    wait_all(ts)
    assert.is_true(most <= 4)
    assert.is_true(got > 0)
    assert.equal(4, s:available())
    assert.equal(0, waiters(s))
  end)

  it("acquire waits at top level, running the loop", function()
    local s, go = corio.semaphore(1), corio.event()
    local t = corio.spawn(function() local _ <close> = s:acquire() go:wait() end)
    until_(function() return s:locked() end)
    corio.spawn(function() corio.sleep(0.005) go:set() end)
    local g <close> = s:acquire()
    assert.is_true(t:done())
  end)
end)

describe("lock", function()
  it("has one holder at a time, served in order", function()
    local l = corio.lock()
    local log, ts = {}, {}
    local first = l:acquire()
    for i = 1, 5 do
      ts[i] = corio.spawn(function()
        local _ <close> = l:acquire()
        log[#log + 1] = "in" .. i
        corio.sleep(0.001)
        log[#log + 1] = "out" .. i
      end)
    end
    until_(function() return waiters(l) == 5 end)
    assert.equal("<corio.Lock locked waiters=5>", tostring(l))
    first:release()
    wait_all(ts)
    assert.same({"in1", "out1", "in2", "out2", "in3", "out3", "in4", "out4", "in5", "out5"}, log)
    assert.equal("<corio.Lock unlocked waiters=0>", tostring(l))
  end)

  it("release when not locked raises", function()
    local l = corio.lock()
    assert.equal("lock:release: the lock is not locked", errmsg(l.release, l))
    local g = l:acquire()
    assert.is_true(l:locked())
    g:release()
    assert.is_false(l:locked())
  end)
end)

describe("event", function()
  it("set wakes every waiter, in the order they came; wait on a set event returns at once", function()
    local e = corio.event()
    local log, ts = {}, {}
    for i = 1, 4 do ts[i] = corio.spawn(function() assert.is_true(e:wait()) log[#log + 1] = i end) end
    until_(function() return waiters(e) == 4 end)
    assert.equal("<corio.Event unset waiters=4>", tostring(e))
    assert.is_false(e:is_set())
    e:set()
    wait_all(ts)
    assert.same({1, 2, 3, 4}, log)
    assert.is_true(e:is_set())
    assert.is_true(e:wait())
    e:clear()
    assert.is_false(e:is_set())
    assert.equal("<corio.Event unset waiters=0>", tostring(e))
  end)

  it("a cancelled waiter leaves; wait works at top level", function()
    local e = corio.event()
    local w = corio.spawn(function() return e:wait() end)
    until_(function() return waiters(e) == 1 end)
    w:cancel()
    wait_all({w})
    assert.equal(0, waiters(e))
    corio.spawn(function() corio.sleep(0.005) e:set() end)
    assert.is_true(e:wait())
    assert.equal("<corio.Event set waiters=0>", tostring(e))
  end)
end)

describe("queue", function()
  it("rejects bad input, naming the call and the argument", function()
    assert.equal("bad argument #1 to 'corio.queue' (nil or a non-negative integer expected, got -1)",
                 errmsg(corio.queue, -1))
    assert.matches("got 1.5", errmsg(corio.queue, 1.5))
    assert.matches("got \"x\"", errmsg(corio.queue, "x"))
    local q = corio.queue()
    assert.equal("bad argument #1 to 'queue:put' (non-nil value expected, got nil)", errmsg(q.put, q, nil))
    assert.equal("bad argument #1 to 'queue:put_nowait' (non-nil value expected, got nil)",
                 errmsg(q.put_nowait, q, nil))
    assert.equal("bad argument #1 to 'queue:shutdown' (boolean or nil expected, got \"now\")",
                 errmsg(q.shutdown, q, "now"))
    assert.equal("queue:task_done: called more times than there were items put", errmsg(q.task_done, q))
    assert.matches("bad self to 'queue:get'", errmsg(q.get, 5))
  end)

  it("is FIFO, counts, and raises QueueFull / QueueEmpty without waiting", function()
    local q = corio.queue(2)
    assert.is_true(q:empty())
    q:put_nowait("a")
    q:put("b")
    assert.is_true(q:full())
    assert.equal(2, q:qsize())
    local err = errmsg(q.put_nowait, q, "c")
    assert.is_true(err == corio.QueueFull)
    assert.equal("queue_full", err.kind)
    assert.equal("QueueFull: the queue is full (maxsize 2)", tostring(err))
    assert.equal("<corio.Queue maxsize=2 qsize=2 tasks=2>", tostring(q))
    assert.equal("a", q:get_nowait())
    assert.equal("b", q:get())
    err = errmsg(q.get_nowait, q)
    assert.is_true(err == corio.QueueEmpty)
    assert.equal("queue_empty", err.kind)
    local u = corio.queue(0)
    for i = 1, 1000 do u:put_nowait(i) end
    assert.is_false(u:full())
    assert.equal(1000, u:qsize())
    for i = 1, 1000 do assert.equal(i, u:get_nowait()) end
    assert.equal(false, select(2, pcall(function() local f = corio.queue() f:put(false) return f:get() end)))
  end)

  it("get waits while empty and put waits while full, each line in order", function()
    local q = corio.queue(1)
    local got, ts = {}, {}
    for i = 1, 3 do ts[#ts + 1] = corio.spawn(function() local v = q:get() got[#got + 1] = i .. ":" .. v end) end
    until_(function() return waiters(q, "getters") == 3 end)
    for _, v in ipairs({"a", "b", "c", "d", "e"}) do
      ts[#ts + 1] = corio.spawn(function() q:put(v) end)
    end
    until_(function() return #got == 3 end)
    assert.same({"1:a", "2:b", "3:c"}, got)
    assert.equal(1, q:qsize())
    assert.equal("d", q:get())
    assert.equal("e", q:get())
    wait_all(ts)
  end)

  it("a getter cancelled just as it is handed an item passes it on", function()
    local q = corio.queue()
    local got = {}
    local g1 = corio.spawn(function() local v = q:get() got[#got + 1] = "g1:" .. v end)
    local g2 = corio.spawn(function() local v = q:get() got[#got + 1] = "g2:" .. v end)
    until_(function() return tostring(q):match("getters=2") end)
    q:put_nowait("item")
    g1:cancel() -- woken for the item, cancelled before it ran
    wait_all({g1, g2})
    assert.is_true(g1:cancelled())
    assert.same({"g2:item"}, got)
    assert.equal(0, q:qsize())
  end)

  it("a woken getter with nobody behind it leaves the item in the queue", function()
    local q = corio.queue()
    local g1 = corio.spawn(function() return q:get() end)
    until_(function() return tostring(q):match("getters=1") end)
    q:put_nowait("kept")
    g1:cancel()
    wait_all({g1})
    assert.equal("kept", q:get_nowait())
  end)

  it("a putter cancelled just as it is given a slot passes the slot on", function()
    local q = corio.queue(1)
    q:put("x")
    local p1 = corio.spawn(function() q:put("p1") end)
    local p2 = corio.spawn(function() q:put("p2") end)
    until_(function() return tostring(q):match("putters=2") end)
    assert.equal("x", q:get_nowait()) -- the slot is p1's
    p1:cancel()
    wait_all({p1, p2})
    assert.is_true(p1:cancelled())
    assert.equal("p2", q:get_nowait())
    assert.is_true(q:empty())
  end)

  it("a get arriving while the item is promised waits its turn", function()
    local q = corio.queue()
    local got = {}
    local g1 = corio.spawn(function() local v = q:get() got[#got + 1] = "g1:" .. v end)
    until_(function() return waiters(q, "getters") == 1 end)
    q:put_nowait("one") -- g1's, though g1 has not run yet
    corio.spawn(function() corio.sleep(0.005) q:put_nowait("two") end)
    assert.equal("two", q:get()) -- at top level, behind g1
    wait_all({g1})
    assert.same({"g1:one"}, got)
  end)

  it("get_nowait may take a promised item; its getter waits again, first in line", function()
    local q = corio.queue()
    local got = {}
    local g2 = corio.spawn(function() local v = q:get() got[#got + 1] = "g2:" .. v end)
    until_(function() return waiters(q, "getters") == 1 end)
    local g3 = corio.spawn(function() local v = q:get() got[#got + 1] = "g3:" .. v end)
    until_(function() return waiters(q, "getters") == 2 end)
    q:put_nowait("two") -- g2's
    assert.equal("two", q:get_nowait()) -- as asyncio: not empty, so it succeeds
    until_(function() return waiters(q, "getters") == 2 end) -- g2 is back, in front
    q:put_nowait("three")
    q:put_nowait("four")
    wait_all({g2, g3})
    assert.same({"g2:three", "g3:four"}, got)
  end)

  it("loses no item when getters and putters time out or are cancelled", function()
    local q = corio.queue(3)
    local N = 300
    local seen, count, stop = {}, 0, false
    local function got(v)
      assert.is_nil(seen[v])
      seen[v] = true
      count = count + 1
      q:task_done()
    end
    math.randomseed(7)
    local producers, timed, plain = {}, {}, {}
    for p = 1, 3 do
      producers[p] = corio.spawn(function()
        for i = p, N, 3 do
          while not pcall(corio.timeout, 0.001 * math.random(0, 2), q.put, q, i) do end
        end
      end)
    end
    -- getters that time out, over and over (ended by `stop`: a cancel that
    -- lands with a deadline is taken for the deadline by corio.timeout)
    for c = 1, 3 do
      timed[c] = corio.spawn(function()
        while not stop do
          local ok, v = pcall(corio.timeout, 0.001 * math.random(0, 2), q.get, q)
          if ok then got(v) elseif v ~= corio.TimeoutError then error(v, 0) end
        end
      end)
    end
    -- getters cancelled and replaced while items flow
    local function getter() return corio.spawn(function() while true do got(q:get()) end end) end
    for c = 1, 3 do plain[c] = getter() end
    for round = 1, 12 do
      corio.sleep(0.001 * (round % 3))
      local c = round % 3 + 1
      plain[c]:cancel()
      wait_all({plain[c]})
      assert.is_true(plain[c]:cancelled())
      plain[c] = getter()
    end
    wait_all(producers)
    wait_all({corio.spawn(function() q:join() end)})
    assert.equal(N, count)
    for i = 1, N do assert.is_true(seen[i], i) end
    stop = true
    for _, c in ipairs(plain) do c:cancel() end
    wait_all(timed)
    wait_all(plain)
    assert.equal("<corio.Queue maxsize=3 qsize=0>", tostring(q))
  end)

  it("join waits until task_done was called for every item", function()
    local q = corio.queue()
    q:join() -- nothing put: at once
    for i = 1, 3 do q:put(i) end
    local done = false
    local j = corio.spawn(function() q:join() done = true end)
    for _ = 1, 3 do
      q:get()
      corio.sleep(0.001)
      assert.is_false(done)
      q:task_done()
    end
    wait_all({j})
    assert.is_true(done)
  end)

  it("shutdown: puts raise, gets drain then raise, blocked callers are released", function()
    local q = corio.queue(1)
    q:put("left")
    local putter = corio.spawn(function() return q:put("blocked") end)
    until_(function() return tostring(q):match("putters=1") end)
    q:shutdown()
    wait_all({putter})
    local err = putter:exception()
    assert.is_true(err == corio.QueueShutDown)
    assert.equal("queue_shutdown", err.kind)
    assert.is_true(errmsg(q.put_nowait, q, 1) == corio.QueueShutDown)
    assert.is_true(errmsg(q.put, q, 1) == corio.QueueShutDown)
    assert.equal("left", q:get()) -- what was in it still comes out
    assert.is_true(errmsg(q.get, q) == corio.QueueShutDown)
    assert.is_true(errmsg(q.get_nowait, q) == corio.QueueShutDown)
    assert.matches(" shutdown>$", tostring(q))
    local e = corio.queue()
    local getter = corio.spawn(function() return e:get() end)
    until_(function() return tostring(e):match("getters=1") end)
    e:shutdown(false)
    wait_all({getter})
    assert.is_true(getter:exception() == corio.QueueShutDown)
  end)

  it("shutdown(true) drops the items, releases join and the getters", function()
    local q = corio.queue()
    for i = 1, 3 do q:put(i) end
    assert.equal(1, q:get())
    q:task_done()
    local joiner = corio.spawn(function() q:join() return "joined" end)
    corio.sleep(0.001)
    assert.is_false(joiner:done())
    q:shutdown(true)
    wait_all({joiner})
    assert.equal("joined", joiner:result())
    assert.equal(0, q:qsize())
    assert.is_true(errmsg(q.get, q) == corio.QueueShutDown)
    assert.equal("queue:task_done: called more times than there were items put", errmsg(q.task_done, q))
  end)

  it("get at top level runs the loop until a task puts", function()
    local q = corio.queue()
    corio.spawn(function() corio.sleep(0.005) q:put("from a task") end)
    assert.equal("from a task", q:get())
  end)
end)
