-- Retries on corio.fetch/get/post and sessions (the `retries` option, run
-- by the runtime: fetch_retry.c), against local servers that fail on
-- purpose and count what they saw: corio.serve handlers in this process,
-- and a raw python server that resets connections (stopped by PID).
-- Times are checked from below only: a retry waits at least what it was
-- told; a ceiling, where one is needed, is far above what is expected.
local corio = require "corio"

local shell = require "tests.lua.support.shell"
local sh = shell.sh

local free_port = shell.free_port

local fetch_error = shell.fetch_error

-- A server whose handler answers from a script: `plan(n, req)` gives the
-- answer to the n-th request; `seen` holds every request's method and body.
local function server(plan)
  local s = {seen = {}}
  s.srv = corio.serve{port = 0, handler = function(req)
    s.seen[#s.seen + 1] = {method = req.method, body = req.body}
    return plan(#s.seen, req)
  end}
  s.url = s.srv.url
  return s
end

local function busy_then_ok(fails, status, headers)
  return function(n)
    if n <= fails then return {status = status or 503, headers = headers, body = "busy"} end
    return {status = 200, body = "ok " .. n}
  end
end

local fast = {attempts = 4, backoff = 0.01, max_backoff = 0.05}

describe("retries", function()
  it("a 503 then a 200: the response of the second try, attempts = 2", function()
    local s = server(busy_then_ok(1))
    local r = corio.get(s.url, {retries = fast})
    s.srv:close()
    assert.equal(200, r.status)
    assert.equal("ok 2", r.body)
    assert.equal(2, r.attempts)
    assert.equal(2, #s.seen)
  end)

  it("without retries one try, attempts = 1", function()
    local s = server(busy_then_ok(1))
    local r = corio.get(s.url)
    s.srv:close()
    assert.equal(503, r.status)
    assert.equal(1, r.attempts)
    assert.equal(1, #s.seen)
  end)

  it("retries = n makes n + 1 tries, then returns the last response", function()
    local s = server(busy_then_ok(100, 502))
    local r = corio.get(s.url, {retries = 2})
    assert.equal(502, r.status)
    assert.equal("busy", r.body)
    assert.equal(3, r.attempts)
    assert.equal(3, #s.seen)
    -- 0 and false: one try
    r = corio.get(s.url, {retries = 0})
    assert.equal(1, r.attempts)
    r = corio.get(s.url, {retries = false})
    assert.equal(1, r.attempts)
    s.srv:close()
    assert.equal(5, #s.seen)
  end)

  it("every default status is retried (429, 502, 503, 504); others are not", function()
    for _, st in ipairs{429, 502, 503, 504} do
      local s = server(busy_then_ok(1, st))
      local r = corio.get(s.url, {retries = fast})
      s.srv:close()
      assert.equal(200, r.status, st)
      assert.equal(2, r.attempts, st)
    end
    for _, st in ipairs{500, 404, 501} do
      local s = server(busy_then_ok(1, st))
      local r = corio.get(s.url, {retries = fast})
      s.srv:close()
      assert.equal(st, r.status)
      assert.equal(1, r.attempts)
      assert.equal(1, #s.seen)
    end
    -- statuses replaces the list
    local s = server(busy_then_ok(1, 500))
    local r = corio.get(s.url, {retries = {attempts = 3, backoff = 0.01, statuses = {500}}})
    assert.equal(200, r.status)
    assert.equal(2, r.attempts)
    r = corio.get(s.url, {retries = {attempts = 3, backoff = 0.01, statuses = {}}})
    s.srv:close()
    assert.equal(200, r.status) -- the third request: past the failures
    assert.equal(1, r.attempts)
  end)

  it("POST is not retried by default; it is when methods lists it", function()
    local s = server(busy_then_ok(1))
    local r = corio.post(s.url, {body = "x", retries = fast})
    assert.equal(503, r.status)
    assert.equal(1, r.attempts)
    assert.equal(1, #s.seen)
    r = corio.fetch(s.url, {method = "POST", json = {a = 1},
      retries = {attempts = 3, backoff = 0.01, methods = {"POST"}}})
    assert.equal(200, r.status)
    assert.equal(1, r.attempts) -- the second request: past the failure
    s.srv:close()
    s = server(busy_then_ok(1))
    r = corio.post(s.url, {body = "y", retries = {attempts = 3, backoff = 0.01, methods = {"POST"}}})
    s.srv:close()
    assert.equal(200, r.status)
    assert.equal(2, r.attempts)
    -- GET is no longer in the list: methods replaces it
    s = server(busy_then_ok(1))
    r = corio.get(s.url, {retries = {attempts = 3, backoff = 0.01, methods = {"POST"}}})
    s.srv:close()
    assert.equal(1, r.attempts)
  end)

  it("sends the body again on each try (PUT, DELETE, HEAD, OPTIONS are retried)", function()
    local s = server(busy_then_ok(2))
    local body = ("0123456789"):rep(5000)
    local r = corio.fetch(s.url, {method = "PUT", body = body, retries = fast})
    s.srv:close()
    assert.equal(200, r.status)
    assert.equal(3, r.attempts)
    assert.equal(3, #s.seen)
    for i = 1, 3 do
      assert.equal("PUT", s.seen[i].method)
      assert.is_true(s.seen[i].body == body, "try " .. i)
    end
    for _, m in ipairs{"DELETE", "HEAD", "OPTIONS"} do
      s = server(busy_then_ok(1))
      r = corio.fetch(s.url, {method = m, retries = fast})
      s.srv:close()
      assert.equal(200, r.status, m)
      assert.equal(2, r.attempts, m)
    end
  end)

  it("honours Retry-After in seconds: waits at least that long", function()
    local s = server(busy_then_ok(1, 429, {["Retry-After"] = "1"}))
    local t0 = corio.time()
    local r = corio.get(s.url, {retries = {attempts = 2, backoff = 0, max_backoff = 10}})
    local dt = corio.time() - t0
    s.srv:close()
    assert.equal(200, r.status)
    assert.equal(2, r.attempts)
    assert.is_true(dt >= 1, ("waited %.3f s"):format(dt))
  end)

  it("honours Retry-After as an HTTP-date", function()
    local s = server(function(n)
      if n == 1 then
        -- two seconds ahead, whole seconds: at least one second from now
        local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 2)
        return {status = 503, headers = {["Retry-After"] = date}, body = "busy"}
      end
      return "ok"
    end)
    local t0 = corio.time()
    local r = corio.get(s.url, {retries = {attempts = 2, backoff = 0, max_backoff = 10}})
    local dt = corio.time() - t0
    s.srv:close()
    assert.equal(200, r.status)
    assert.equal(2, r.attempts)
    assert.is_true(dt >= 0.99, ("waited %.3f s"):format(dt))
  end)

  it("caps Retry-After and the backoff at max_backoff", function()
    -- uncapped, these would wait an hour, and (backoff 1e6) days
    local s = server(busy_then_ok(1, 503, {["Retry-After"] = "3600"}))
    local t = corio.spawn(corio.get, s.url, {retries = {attempts = 2, max_backoff = 0.05}})
    local r = corio.wait_for(t, 60)
    assert.equal(200, r.status)
    assert.equal(2, r.attempts)
    s.srv:close()
    s = server(busy_then_ok(100))
    t = corio.spawn(corio.get, s.url, {retries = {attempts = 4, backoff = 1e6, max_backoff = 0.05}})
    r = corio.wait_for(t, 60)
    s.srv:close()
    assert.equal(503, r.status)
    assert.equal(4, r.attempts)
    assert.equal(4, #s.seen)
  end)

  it("retries connect errors to a closed port; the last error says after how many tries", function()
    local url = "http://127.0.0.1:" .. free_port() .. "/"
    local err = fetch_error(corio.get, url, {retries = {attempts = 3, backoff = 0.01}})
    assert.equal("connect", err.kind)
    assert.equal(3, err.attempts)
    assert.matches("after 3 tries", err.message)
    err = fetch_error(corio.get, url)
    assert.equal(1, err.attempts)
    assert.no_match("tries", err.message)
    -- no retry for what a retry cannot mend
    err = fetch_error(corio.get, "http://no-such-host.invalid/", {retries = fast})
    assert.equal("dns", err.kind)
    assert.equal(1, err.attempts)
  end)

  it("retries timeouts", function()
    local s = server(function(n)
      if n == 1 then corio.sleep(30) end
      return "ok " .. n
    end)
    local r = corio.get(s.url, {timeout = 0.3, retries = {attempts = 2, backoff = 0}})
    s.srv:close(0)
    assert.equal(200, r.status)
    assert.equal("ok 2", r.body)
    assert.equal(2, r.attempts)
    assert.equal(2, #s.seen)
  end)

  describe("on resets", function()
    local dir, pid, port

    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir))
      port = free_port()
      -- the first two connections are reset once the request arrived; the
      -- others get a 200 whose body is the connection count (at most 40
      -- accepts, 60 s each: the server ends by itself too)
      local f = assert(io.open(dir .. "/rst.py", "w"))
      f:write(([[
import socket, struct
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d)); s.listen(16); s.settimeout(60)
for n in range(1, 41):
    try: c, _ = s.accept()
    except Exception: break
    c.settimeout(10)
    try: c.recv(65536)
    except Exception: pass
    if n <= 2:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        body = str(n).encode()
        try: c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %%d\r\n\r\n%%s" %% (len(body), body))
        except OSError: pass
    c.close()
]]):format(port))
      f:close()
      pid = tonumber((sh(("python3 %s/rst.py >/dev/null 2>&1 & echo $!"):format(dir))))
      for _ = 1, 50 do -- wait until it listens (bounded: 5 s)
        if sh(("ss -ltn 'sport = :%d' | grep -c LISTEN"):format(port)):match("^1") then break end
        corio.sleep(0.1)
      end
    end)

    teardown(function()
      if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
      if dir then os.execute("rm -rf '" .. dir .. "'") end
    end)

    it("tries again after a connection reset", function()
      local r = corio.get("http://127.0.0.1:" .. port .. "/", {retries = fast})
      assert.equal(200, r.status)
      assert.equal("3", r.body) -- the third connection
      assert.equal(3, r.attempts)
    end)
  end)

  describe("sessions", function()
    it("a session's retries is the default of its fetches; a fetch's own overrides it", function()
      local s = server(busy_then_ok(1000))
      local sess <close> = corio.session{retries = {attempts = 3, backoff = 0.01}}
      local r = sess:get(s.url)
      assert.equal(3, r.attempts)
      r = sess:fetch(s.url, {method = "DELETE"})
      assert.equal(3, r.attempts)
      r = sess:get(s.url, {retries = 1})
      assert.equal(2, r.attempts)
      r = sess:get(s.url, {retries = false})
      assert.equal(1, r.attempts)
      r = corio.get(s.url, {session = sess})
      assert.equal(3, r.attempts)
      r = sess:post(s.url, {body = "x"}) -- POST: not retried
      assert.equal(1, r.attempts)
      local n = corio.session{retries = 1}
      assert.equal(2, n:get(s.url).attempts)
      n:close()
      s.srv:close()
      assert.equal(3 + 3 + 2 + 1 + 3 + 1 + 2, #s.seen)
    end)

    it("closing the session ends a fetch waiting between tries", function()
      local s = server(busy_then_ok(1000, 503, {["Retry-After"] = "30"}))
      local sess = corio.session{retries = {attempts = 3, max_backoff = 60}}
      local t = corio.spawn(sess.get, sess, s.url)
      for _ = 1, 500 do -- bounded: until the first try is answered
        if #s.seen >= 1 and corio.stats().fetches == 1 then break end
        corio.sleep(0.01)
      end
      corio.sleep(0.05)
      sess:close()
      local ok, err = pcall(corio.wait_for, t, 10)
      s.srv:close()
      assert.is_false(ok)
      assert.equal("cancelled", err.kind, tostring(err))
      assert.equal(1, #s.seen)
      assert.equal(0, corio.stats().fetches)
    end)
  end)

  it("cancelling a fetch that waits between tries cancels it at once", function()
    local s = server(busy_then_ok(1000, 503, {["Retry-After"] = "30"}))
    local t = corio.spawn(corio.get, s.url, {retries = {attempts = 3, max_backoff = 60}})
    for _ = 1, 500 do -- bounded: until the first try is answered
      if #s.seen >= 1 then break end
      corio.sleep(0.01)
    end
    corio.sleep(0.05) -- the response is in: the fetch sleeps now
    assert.equal(1, corio.stats().fetches)
    assert.is_false(t:done())
    t:cancel()
    local ok, err = pcall(t.await, t)
    assert.is_false(ok)
    assert.equal("CancelledError", err.name, tostring(err))
    -- nothing left: no transfer, no timer, no second try
    assert.equal(0, corio.stats().fetches)
    corio.sleep(0.05)
    s.srv:close()
    assert.equal(1, #s.seen)
  end)

  it("corio.blocking retries too", function()
    local url = "http://127.0.0.1:" .. free_port() .. "/"
    local err = fetch_error(corio.blocking.get, url, {retries = {attempts = 2, backoff = 0.01}})
    assert.equal("connect", err.kind)
    assert.equal(2, err.attempts)
  end)

  describe("bad input names the option and what was expected", function()
    local url = "http://127.0.0.1:1/"
    local cases = {
      {{foo = 1}, "option 'retries' has no key 'foo'"},
      {{attempts = 0}, "option 'retries.attempts' must be an integer from 1"},
      {{attempts = 1.5}, "option 'retries.attempts' must be an integer"},
      {{backoff = -1}, "option 'retries.backoff' must be a number of seconds >= 0"},
      {{max_backoff = "x"}, "option 'retries.max_backoff' must be a number of seconds >= 0"},
      {{statuses = {503.5}}, "option 'retries.statuses' must be a list of HTTP statuses"},
      {{statuses = {"503"}}, "option 'retries.statuses' must be a list of HTTP statuses"},
      {{statuses = {99}}, "option 'retries.statuses' must be a list of HTTP statuses"},
      {{statuses = 503}, "option 'retries.statuses' must be a list of HTTP statuses"},
      {{methods = {1}}, "option 'retries.methods' must be a list of HTTP method names"},
      {{methods = {"G T"}}, "option 'retries.methods': 'G T' is not an HTTP method"},
      {-1, "option 'retries' must be a number of retries from 0"},
      {1.5, "option 'retries' must be a number of retries from 0"},
      {"3", "option 'retries' must be a number of retries, a table or false"},
      {true, "option 'retries' must be a number of retries, a table or false"},
    }
    it("in corio.fetch, corio.get, corio.post", function()
      for _, c in ipairs(cases) do
        for _, fn in ipairs{"fetch", "get", "post"} do
          local ok, msg = pcall(corio[fn], url, {retries = c[1]})
          assert.is_false(ok)
          assert.equal("string", type(msg), tostring(msg))
          assert.matches("corio." .. fn .. ": " .. c[2], msg, 1, true)
        end
      end
    end)
    it("in corio.session", function()
      for _, c in ipairs(cases) do
        local ok, msg = pcall(corio.session, {retries = c[1]})
        assert.is_false(ok)
        assert.matches("corio.session: " .. c[2], msg, 1, true)
      end
    end)
  end)
end)
