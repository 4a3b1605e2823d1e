-- corio.map and corio.imap: input order and completion order, the
-- concurrency bound, return_exceptions, retries, lazy iterators, leaving a
-- loop early and cancelling the caller (every call's cleanup runs before
-- the job returns or raises), and bad input.  Calls sleep instead of
-- fetching: the job's machinery is what is under test here (bench/map.lua
-- runs it on real fetches).
local corio = require "corio"

-- fn for a job that counts calls in flight and their cleanups
local function tracker()
  local tr = {now = 0, max = 0, calls = 0, cleaned = 0}
  function tr.fn(delay, i)
    tr.calls = tr.calls + 1
    tr.now = tr.now + 1
    if tr.now > tr.max then tr.max = tr.now end
    local _ <close> = setmetatable({}, {__close = function()
      tr.now = tr.now - 1
      tr.cleaned = tr.cleaned + 1
    end})
    corio.sleep(delay)
    return i * 10
  end
  return tr
end

local function range(n, v)
  local t = {}
  for i = 1, n do t[i] = v or 0.001 * ((i * 7) % 5) end
  return t
end

describe("corio.map", function()
  it("returns the first results in input order, with n", function()
    local r = corio.map(function(d, i)
      corio.sleep(d)
      return i * 2, "second result dropped"
    end, range(20), {concurrency = 4})
    assert.equal(20, r.n)
    for i = 1, 20 do assert.equal(i * 2, r[i]) end
  end)

  it("keeps at most `concurrency` calls at once, and reaches it", function()
    local tr = tracker()
    corio.map(tr.fn, range(50, 0.002), {concurrency = 7})
    assert.equal(7, tr.max)
    assert.equal(50, tr.calls)
    assert.equal(0, tr.now)
  end)

  it("runs each call in a task, not in the caller's", function()
    local outer = corio.spawn(function()
      local me = corio.current_task()
      local r = corio.map(function() return corio.current_task() end, {1, 2, 3})
      for i = 1, 3 do assert.is_not_nil(r[i]); assert.are_not.equal(me, r[i]) end
      return true
    end)
    assert.is_true(outer:await())
    local r = corio.map(function() return corio.current_task() end, {1})
    assert.is_not_nil(r[1]) -- at top level too
  end)

  it("works inside a task as at top level", function()
    local t = corio.spawn(corio.map, function(x) corio.sleep(0.001); return -x end,
      {1, 2, 3}, {concurrency = 2})
    local r = t:await()
    assert.same({-1, -2, -3, n = 3}, r)
  end)

  it("handles an empty list and nil results", function()
    assert.same({n = 0}, corio.map(function() error("never") end, {}))
    local r = corio.map(function(x) if x % 2 == 0 then return x end end, {1, 2, 3, 4})
    assert.equal(4, r.n)
    assert.is_nil(r[1]); assert.equal(2, r[2]); assert.is_nil(r[3]); assert.equal(4, r[4])
  end)

  it("raises the first error after the calls in flight ran their cleanup", function()
    local tr = tracker()
    local ok, err = pcall(corio.map, function(d, i)
      if i == 5 then corio.sleep(0.005); error({boom = i}) end
      return tr.fn(d, i)
    end, range(40, 0.05), {concurrency = 8})
    assert.is_false(ok)
    assert.same({boom = 5}, err)
    assert.equal(0, tr.now)              -- nothing left in flight
    assert.equal(tr.calls, tr.cleaned)   -- every started call cleaned up
    assert.is_true(tr.calls < 40)        -- later items never started
  end)

  it("puts error values in their slots with return_exceptions", function()
    local r = corio.map(function(x)
      corio.sleep(0.001)
      if x % 3 == 0 then error("no " .. x, 0) end
      return x
    end, {1, 2, 3, 4, 5, 6}, {return_exceptions = true, concurrency = 2})
    assert.same({1, 2, "no 3", 4, 5, "no 6", n = 6}, r)
  end)

  it("retries failed calls (retries = n is n + 1 tries)", function()
    local calls = {}
    local r = corio.map(function(x, i)
      calls[i] = (calls[i] or 0) + 1
      if calls[i] <= x then error("flaky " .. i, 0) end
      return calls[i]
    end, {0, 1, 2, 5}, {retries = {attempts = 3, backoff = 0.001}, return_exceptions = true})
    assert.same({1, 2, 3, 3}, calls)
    assert.same({1, 2, 3, "flaky 4", n = 4}, r)
    -- the number form, with its 0.5 s base: one retry sleeps at most 0.5 s
    local n = 0
    local t0 = corio.time()
    local r2 = corio.map(function()
      n = n + 1
      if n == 1 then error("once") end
      return "ok"
    end, {1}, {retries = 1})
    assert.equal("ok", r2[1])
    assert.equal(2, n)
    assert.is_true(corio.time() - t0 < 5)
  end)

  it("does not retry a call that was cancelled", function()
    local calls = 0
    local r = corio.map(function()
      calls = calls + 1
      local t = corio.spawn(corio.sleep, 10)
      t:cancel()
      return t:await() -- raises CancelledError
    end, {1}, {retries = {attempts = 5, backoff = 0}, return_exceptions = true})
    assert.equal(1, calls)
    assert.equal("CancelledError", r[1].name)
  end)

  it("ends at once when cancelled during a retry's backoff", function()
    local calls = 0
    local t = corio.spawn(corio.map, function()
      calls = calls + 1
      error("always")
    end, {1}, {retries = {attempts = 3, backoff = 30}})
    corio.sleep(0.01)
    t:cancel()
    local ok, err = pcall(corio.await, t)
    assert.is_false(ok)
    assert.equal("CancelledError", err.name)
    assert.equal(1, calls)
  end)

  it("pulls an iterator function until nil", function()
    local k = 0
    local r = corio.map(function(x) return x * x end, function()
      k = k + 1
      if k <= 10 then return k end
    end, {concurrency = 3})
    assert.equal(10, r.n)
    for i = 1, 10 do assert.equal(i * i, r[i]) end
    assert.equal(11, k) -- never called again after its nil
  end)

  it("raises the iterator's error after cancelling the calls in flight", function()
    local tr = tracker()
    local k = 0
    local ok, err = pcall(corio.map, tr.fn, function()
      k = k + 1
      if k == 6 then error("bad input", 0) end
      return 1
    end, {concurrency = 3})
    assert.is_false(ok)
    assert.equal("bad input", err)
    assert.equal(0, tr.now)
    assert.equal(tr.calls, tr.cleaned)
  end)

  it("cancels and waits for every call when the calling task is cancelled", function()
    local tr = tracker()
    local t = corio.spawn(corio.map, tr.fn, range(100, 10), {concurrency = 10})
    corio.sleep(0.02)
    assert.equal(10, tr.now)
    t:cancel()
    local ok, err = pcall(corio.await, t)
    assert.is_false(ok)
    assert.equal("CancelledError", err.name)
    assert.is_true(t:cancelled())
    assert.equal(0, tr.now)  -- all cleaned up by the time the caller ended
    assert.equal(10, tr.cleaned)
    assert.equal(10, tr.calls)
  end)

  it("rejects bad input with errors that name it", function()
    local fn = function() end
    local cases = {
      {"fn must be a function", nil, {1}},
      {"fn must be a function", "f", {1}},
      {"items must be a table or an iterator function", fn, 3},
      {"unknown option 'concurency'", fn, {1}, {concurency = 2}},
      {"option 'concurrency' must be a positive integer", fn, {1}, {concurrency = 0}},
      {"option 'concurrency' must be a positive integer", fn, {1}, {concurrency = 1.5}},
      {"option 'concurrency' must be a positive integer", fn, {1}, {concurrency = "4"}},
      {"option 'retries' must be a non%-negative integer", fn, {1}, {retries = -1}},
      {"option 'retries.attempts' must be a positive integer", fn, {1}, {retries = {attempts = 0}}},
      {"unknown option 'retries.tries'", fn, {1}, {retries = {tries = 2}}},
      {"option 'return_exceptions' must be a boolean", fn, {1}, {return_exceptions = 1}},
      {"option 'progress' must be a boolean", fn, {1}, {progress = "yes"}},
      {"option 'label' must be a string", fn, {1}, {label = 4}},
      {"options must be a table", fn, {1}, 5},
    }
    for _, name in ipairs {"map", "imap"} do
      for _, case in ipairs(cases) do
        local ok, err = pcall(corio[name], case[2], case[3], case[4])
        assert.is_false(ok, name .. ": " .. case[1])
        assert.matches("corio%." .. name .. ": " .. case[1], err)
      end
    end
  end)
end)

describe("corio.imap", function()
  it("yields i, result in completion order", function()
    local order = {}
    for i, r, err in corio.imap(function(d, i) corio.sleep(d); return i * 10 end,
        {0.04, 0.01, 0.03, 0.002}, {concurrency = 4}) do
      assert.is_nil(err)
      assert.equal(i * 10, r)
      order[#order + 1] = i
    end
    assert.same({4, 2, 3, 1}, order)
  end)

  it("yields errors as the third value with return_exceptions", function()
    local got = {}
    for i, r, err in corio.imap(function(x)
        if x == 2 then error("two", 0) end
        return x
      end, {1, 2, 3}, {return_exceptions = true, concurrency = 1}) do
      got[i] = err or r
    end
    assert.same({1, "two", 3}, got)
  end)

  it("raises the first error at the loop without return_exceptions", function()
    local tr = tracker()
    local seen = 0
    local ok, err = pcall(function()
      for _ in corio.imap(function(d, i)
          if i == 3 then error("third", 0) end
          return tr.fn(d, i)
        end, range(20, 0.05), {concurrency = 5}) do
        seen = seen + 1
      end
    end)
    assert.is_false(ok)
    assert.equal("third", err)
    assert.equal(0, tr.now)
    assert.equal(tr.calls, tr.cleaned)
  end)

  it("pulls an iterator lazily: memory follows the concurrency", function()
    local c, pulled, completed, consumed = 4, 0, 0, 0
    local ahead_done, ahead_used = 0, 0
    local function items()
      if pulled == 200 then return nil end
      pulled = pulled + 1
      ahead_done = math.max(ahead_done, pulled - completed)
      ahead_used = math.max(ahead_used, pulled - consumed)
      return pulled
    end
    for i in corio.imap(function(x)
        corio.sleep(0.001 * (x % 3))
        completed = completed + 1
        return x
      end, items, {concurrency = c}) do
      consumed = consumed + 1
      if i % 10 == 0 then corio.sleep(0.02) end -- a loop body slower than the calls
    end
    assert.equal(200, consumed)
    assert.is_true(ahead_done <= c, ahead_done)       -- at most c in flight
    assert.is_true(ahead_used <= 2 * c, ahead_used)   -- and c more waiting to be taken
  end)

  it("reads io.lines lazily", function()
    local name = os.tmpname()
    local f = assert(io.open(name, "w"))
    for i = 1, 100 do f:write("line ", i, "\n") end
    f:close()
    local sum = 0
    for _, r in corio.imap(function(line) return tonumber(line:match("%d+")) end,
        io.lines(name), {concurrency = 8}) do
      sum = sum + r
    end
    os.remove(name)
    assert.equal(5050, sum)
  end)

  for _, how in ipairs {"break", "error"} do
    it("cancels the calls in flight when the loop is left by " .. how, function()
      local tr = tracker()
      -- the first call is quick so that the loop body runs while 5 are in flight
      local items = range(100, 10)
      items[1] = 0.001
      local t = corio.spawn(function()
        for _ in corio.imap(tr.fn, items, {concurrency = 6}) do
          assert.equal(6, tr.now) -- the first done, its worker on the 7th
          if how == "error" then error("left", 0) end
          break
        end
        return tr.now
      end)
      local ok, res = pcall(corio.await, t)
      if how == "error" then
        assert.is_false(ok); assert.equal("left", res)
      else
        assert.is_true(ok, res); assert.equal(0, res)
      end
      assert.equal(0, tr.now)
      assert.equal(7, tr.calls)
      assert.equal(7, tr.cleaned)
    end)
  end

  it("cancels the calls in flight when left early at top level", function()
    local tr = tracker()
    local items = range(50, 10)
    items[1] = 0.001
    for _ in corio.imap(tr.fn, items, {concurrency = 4}) do break end
    assert.equal(0, tr.now)
    assert.equal(5, tr.calls)
    assert.equal(5, tr.cleaned)
  end)

  it("cancels and waits for every call when the calling task is cancelled", function()
    local tr = tracker()
    local t = corio.spawn(function()
      for _ in corio.imap(tr.fn, range(100, 10), {concurrency = 10}) do end
    end)
    corio.sleep(0.02)
    assert.equal(10, tr.now)
    t:cancel()
    local ok, err = pcall(corio.await, t)
    assert.is_false(ok)
    assert.equal("CancelledError", err.name)
    assert.equal(0, tr.now)
    assert.equal(10, tr.cleaned)
  end)
end)
