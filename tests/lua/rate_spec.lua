-- A session's rate = n: at most n requests to one host start in any
-- one-second window (a sliding window of start times, per host), and the
-- queue behind a session's limits.  The server is corio.serve in this
-- process; it counts what it saw.  Start times are the client's own
-- (response timing.start, on corio.time()'s clock): those are what the
-- limit governs, and they carry no network delay, so the window check is
-- exact rather than timed.
local corio = require "corio"

local seen = {} -- path -> number of requests the server saw
local arrivals = {} -- paths in the order the server saw them
local srv = corio.serve{port = 0, handler = function(req)
  seen[req.path] = (seen[req.path] or 0) + 1
  arrivals[#arrivals + 1] = req.path
  if req.path == "/slow" then corio.sleep(0.3) end
  if req.path:match("^/flaky") and seen[req.path] == 1 then
    return {status = 503, headers = {["retry-after"] = "1"}}
  end
  return "ok"
end}
local port = srv.url:match(":(%d+)")
local function url(host, path) return ("http://%s:%s%s"):format(host, port, path) end

-- Fetch every url at once on session s; returns the responses in order.
local function fetch_all(s, urls)
  local tasks = {}
  for i, u in ipairs(urls) do tasks[i] = corio.spawn(s.get, s, u) end
  corio.wait(tasks)
  local out = {}
  for i, t in ipairs(tasks) do out[i] = t:result() end
  return out
end

-- No window of one second holds more than n of these start times.
local function assert_window(starts, n)
  table.sort(starts)
  for i = 1, #starts - n do
    -- 1 us of slack for the double's rounding, never for timing
    assert(starts[i + n] - starts[i] >= 1 - 1e-6, ("starts %d and %d are %.6f s apart")
      :format(i, i + n, starts[i + n] - starts[i]))
  end
end

describe("session rate", function()

  it("starts at most n requests to a host in any one-second window", function()
    local s <close> = corio.session{rate = 5}
    local urls = {}
    for i = 1, 12 do urls[i] = url("127.0.0.1", "/a") end
    local starts, waited = {}, 0
    for i, r in ipairs(fetch_all(s, urls)) do
      assert.equal(200, r.status)
      starts[i] = r.timing.start
      if r.timing.queue > 0.5 then waited = waited + 1 end
    end
    assert.equal(12, seen["/a"])
    assert_window(starts, 5)
    assert.equal(7, waited) -- 5 at once, then 5 and 2 a second apart
  end)

  it("limits each host separately", function()
    local s <close> = corio.session{rate = 2}
    local urls = {}
    for i = 1, 3 do
      urls[#urls + 1] = url("127.0.0.1", "/b")
      urls[#urls + 1] = url("localhost", "/b")
    end
    local by_host = {}
    for i, r in ipairs(fetch_all(s, urls)) do
      assert.equal(200, r.status)
      local host = urls[i]:match("//([^:]+)")
      by_host[host] = by_host[host] or {}
      table.insert(by_host[host], r)
    end
    for host, rs in pairs(by_host) do
      local starts, now = {}, 0
      for i, r in ipairs(rs) do
        starts[i] = r.timing.start
        if r.timing.queue < 0.5 then now = now + 1 end
      end
      assert_window(starts, 2)
      -- with one limit for both hosts, only 2 of the 6 would start at once
      assert.equal(2, now, host)
    end
    assert.equal(6, seen["/b"])
  end)

  it("cancels a fetch waiting for its rate slot at once", function()
    local s <close> = corio.session{rate = 1}
    local first = corio.spawn(s.get, s, url("127.0.0.1", "/c"))
    local waiting = corio.spawn(s.get, s, url("127.0.0.1", "/c"))
    corio.sleep(0.05) -- the first has started, the second waits ~1 s
    waiting:cancel()
    corio.wait({waiting})
    assert.is_true(waiting:cancelled())
    -- done before its window opened: the server saw the first only
    assert.equal(1, seen["/c"])
    assert.equal(200, first:result().status)
    -- the next one takes the window the cancelled one never used
    local r = s:get(url("127.0.0.1", "/c"))
    assert.equal(200, r.status)
    assert.equal(2, seen["/c"])
    assert.is_true(r.timing.start - first:result().timing.start >= 1 - 1e-6)
  end)

  it("raises on a bad rate, naming the option", function()
    for _, v in ipairs{0, -1, 1.5, "5", true, {}} do
      local ok, err = pcall(corio.session, {rate = v})
      assert.is_false(ok)
      assert.matches("option 'rate'", tostring(err))
    end
  end)
end)

describe("session queue", function()
  teardown(function() srv:close() end)
  it("runs transfers over max_connections in the order they were made", function()
    local s <close> = corio.session{max_connections = 1}
    local order, tasks = {}, {}
    for i = 1, 6 do
      tasks[i] = corio.spawn(function()
        local r = s:get(url("127.0.0.1", "/d"))
        order[#order + 1] = i
        return r.timing.start
      end)
    end
    corio.wait(tasks)
    assert.same({1, 2, 3, 4, 5, 6}, order)
    for i = 2, 6 do assert.is_true(tasks[i]:result() >= tasks[i - 1]:result()) end
  end)

  it("cancels a queued transfer and closes a session with queued ones", function()
    local s = corio.session{max_connections = 1}
    local tasks = {}
    for i = 1, 4 do tasks[i] = corio.spawn(s.get, s, url("127.0.0.1", "/slow")) end
    corio.sleep(0.05) -- the first is at the server, three wait
    tasks[3]:cancel()
    corio.wait({tasks[3]})
    assert.is_true(tasks[3]:cancelled())
    assert.equal(1, seen["/slow"])
    s:close() -- the one in flight and the two queued fail: cancelled
    corio.wait(tasks)
    for _, i in ipairs{1, 2, 4} do
      local err = tasks[i]:exception()
      assert.is_not_nil(err)
      assert.equal("cancelled", err.kind)
    end
  end)

  it("times a queued transfer out while it waits", function()
    local s <close> = corio.session{max_connections = 1}
    local slow = corio.spawn(s.get, s, url("127.0.0.1", "/slow"))
    local ok, err = pcall(s.get, s, url("127.0.0.1", "/e"), {timeout = 0.05})
    assert.is_false(ok)
    assert.equal("timeout", err.kind)
    assert.matches("waiting for a connection slot", err.message)
    assert.equal(200, corio.await(slow).status)
    assert.is_nil(seen["/e"])
  end)

  it("a try waiting for its retry gives its slot to the next request", function()
    local s <close> = corio.session{max_connections = 1,
      retries = {attempts = 2, max_backoff = 1}}
    arrivals = {}
    local a = corio.spawn(s.get, s, url("127.0.0.1", "/flaky-a"))
    corio.sleep(0) -- a is first in line
    local b = corio.spawn(s.get, s, url("127.0.0.1", "/b"))
    assert.equal(200, corio.await(a).status)
    assert.equal(2, a:result().attempts)
    assert.equal(200, corio.await(b).status)
    -- b went while a slept out its Retry-After, not after a's second try
    assert.same({"/flaky-a", "/b", "/flaky-a"}, arrivals)
  end)

  it("each try takes a place in the rate window", function()
    local s <close> = corio.session{rate = 1,
      retries = {attempts = 2, backoff = 0.001, max_backoff = 0.001}}
    local r = s:get(url("127.0.0.1", "/flaky-rate"))
    assert.equal(200, r.status)
    assert.equal(2, r.attempts)
    -- the second try started a second after the first, not 1 ms after
    -- (a lower bound only: the window's own exactness is tested above)
    assert.is_true(r.timing.queue >= 0.9, tostring(r.timing.queue))
  end)
end)
