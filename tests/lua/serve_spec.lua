-- corio.serve, checked with peers nobody here wrote: curl for single
-- requests, wrk for load, and bash's /dev/tcp for raw (malformed, slow,
-- idle) connections.  The server runs in this process, on the loop that
-- the `it` blocks run whenever they wait; the clients run as background
-- processes writing to files, which the tests poll with corio.sleep, so
-- the loop keeps serving while a client is at work.  Every client is
-- bounded in time (curl --max-time, wrk -d, timeout) and stopped by PID.
local corio = require "corio"

local bin = os.getenv("CORIO_BIN") or "build/corio"
local here = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "./"
local root = here .. "../../"

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
local njobs = 0

local shell = require "tests.lua.support.shell"
local readfile = shell.readfile

local function writefile(name, s)
  local f = assert(io.open(name, "wb"))
  f:write(s)
  f:close()
end

-- Run a shell script in the background (the loop keeps serving); wait
-- for it with finish, which returns its stdout, exit status and stderr.
local bg, finish = shell.bg, shell.finish
local function run(script, timeout) return finish(bg(script), timeout) end

-- Wait until pred() holds, running the loop (bounded).
local function wait_until(pred, timeout)
  local deadline = corio.time() + (timeout or 5)
  while not pred() do
    if corio.time() > deadline then return false end
    corio.sleep(0.005)
  end
  return true
end

local function curl(args) return "curl -s --max-time 10 " .. args end
local function code_of(url) return curl("-o /dev/null -w '%{http_code}\\n' '" .. url .. "'") end

-- A raw exchange over bash's /dev/tcp: send `data`, then read until the
-- server closes (at most `secs`).
local function raw(port, data, secs)
  njobs = njobs + 1
  local name = ("%s/raw%d"):format(dir, njobs)
  writefile(name, data)
  return ("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; cat %s >&3; timeout %d cat <&3'")
    :format(port, name, secs or 5)
end

-- A python client for what bash cannot do with a socket: send `data`,
-- then "shut" (shutdown(SHUT_WR), then read until the server closes) or
-- "reset" (once the file `go` exists, close with RST: SO_LINGER 0).
-- Bounded: 10 s.
local function pyclient(port, data, mode, go)
  njobs = njobs + 1
  local name = ("%s/py%d"):format(dir, njobs)
  writefile(name .. ".req", data)
  writefile(name .. ".py", ([[
import os, socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", %d), timeout=10)
s.sendall(open(%q, "rb").read())
if %q == "shut":
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
    sys.stdout.write(out.decode("latin-1"))
else:
    end = time.time() + 10
    while not os.path.exists(%q) and time.time() < end: time.sleep(0.01)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
]]):format(port, name .. ".req", mode, go or ""))
  return "python3 " .. name .. ".py"
end

local function status_of(resp) return tonumber((resp or ""):match("^HTTP/1%.1 (%d%d%d)")) end

describe("serve", function()
teardown(function() os.execute("rm -rf " .. dir) end)

describe("corio.serve", function()
  local s, last
  local function hello(req)
    last = req
    if req.path == "/sleep" then corio.sleep(tonumber(req.query.s) or 0.2) end
    if req.path == "/error" then error("handler failed on purpose") end
    return "hello\n"
  end

  before_each(function()
    last = nil
    s = corio.serve{port = 0, handler = hello}
  end)
  after_each(function()
    if s then s:close(0) end
  end)

  it("answers a request from curl, with the fields of req", function()
    local out, rc = run(curl("-i -H 'X-Mixed-Case: Yes' -H 'Accept: a' -H 'Accept: b' " ..
      "-H 'Cookie: x=1' -H 'Cookie: y=2' '"
      .. s.url .. "/p%20q/x?a=1&b=two+words&c=%41%zz&a=2&flag&e=&%C3%A9=%E2%82%AC'"))
    assert.equal(0, rc)
    assert.equal(200, status_of(out))
    assert.matches("\r\nContent%-Type: text/plain; charset=utf%-8\r\n", out)
    assert.matches("\r\n\r\nhello\n$", out)
    assert.equal("GET", last.method)
    assert.equal("/p q/x", last.path)
    assert.equal("/p%20q/x", last.raw_path)
    assert.same({"1", "2"}, last.query.a)
    assert.equal("two words", last.query.b)
    assert.equal("A%zz", last.query.c)
    assert.equal("", last.query.flag)
    assert.equal("", last.query.e)
    assert.equal("€", last.query["é"])
    assert.equal("Yes", last.headers["x-mixed-case"])
    assert.equal("Yes", last.headers["X-MIXED-CASE"])
    assert.equal("Yes", last.headers["X-Mixed-Case"])
    assert.equal("a, b", last.headers.accept)
    assert.equal("x=1; y=2", last.headers.cookie) -- as one Cookie line
    assert.equal("1.1", last.version)
    assert.matches("^127%.0%.0%.1:%d+$", last.remote)
    assert.equal("", last.body)
    assert.equal(s.port, tonumber(s.url:match(":(%d+)$")))
  end)

  it("takes path, query and host from an absolute-form target, not from Host", function()
    -- RFC 9112 3.2.2: the target's host wins over the Host field
    local out, rc = run(raw(s.port, "GET http://example.com:8080/x%20y?y=1 HTTP/1.1\r\n"
      .. "Host: other\r\nConnection: close\r\n\r\n"))
    assert.equal(0, rc)
    assert.equal(200, status_of(out))
    assert.equal("http://example.com:8080/x%20y?y=1", last.target)
    assert.equal("/x y", last.path)
    assert.equal("/x%20y", last.raw_path)
    assert.equal("y=1", last.query_string)
    assert.same({y = "1"}, last.query)
    assert.equal("example.com:8080", last.headers.host)
    -- one that is not an http(s) URL with a host is refused
    last = nil
    out, rc = run(raw(s.port, "GET http://x:port/ HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.equal(0, rc)
    assert.equal(400, status_of(out))
    assert.is_nil(last)
  end)

  it("drops a fragment from an origin-form target, as nginx does", function()
    -- RFC 9112 3.2.1: no fragment in a request target; llhttp lets one in
    for target, want in pairs{["/x#f"] = {"/x", ""}, ["/x?a=1#f?b"] = {"/x", "a=1"},
                                     ["/x#f?a=1"] = {"/x", ""}} do
      last = nil
      local out, rc = run(raw(s.port, "GET " .. target .. " HTTP/1.1\r\nHost: x\r\n"
        .. "Connection: close\r\n\r\n"))
      assert.equal(0, rc)
      assert.equal(200, status_of(out))
      assert.equal(want[1], last.path, target)
      assert.equal(want[2], last.query_string, target)
      assert.equal(target, last.target) -- as sent
    end
  end)

  it("passes the body, and answers tables, strings and nothing", function()
    s:close(0)
    s = corio.serve{port = 0, handler = function(req)
      last = req
      if req.path == "/table" then
        return {status = 201, headers = {["X-One"] = "1", ["X-Many"] = {"a", "b"}, ["X-Num"] = 7},
                body = "made " .. req.body}
      elseif req.path == "/none" then
        return nil
      elseif req.path == "/bad" then
        return {status = 42}
      elseif req.path == "/split" then
        return {headers = {["X-Evil"] = "a\r\nSet-Cookie: x=1"}, body = "no"}
      elseif req.path == "/num" then
        return {status = 202.0, body = 42}
      end
      return req.body:upper()
    end}
    local out = run(curl("-i --data-binary 'some body' " .. s.url .. "/table"))
    assert.equal(201, status_of(out))
    assert.matches("\r\nX%-One: 1\r\n", out)
    assert.matches("\r\nX%-Many: a\r\nX%-Many: b\r\n", out)
    assert.matches("\r\nX%-Num: 7\r\n", out)
    assert.matches("\r\n\r\nmade some body$", out)
    assert.equal("POST", last.method)
    assert.equal("some body", last.body)
    out = run(curl("-i -H 'Transfer-Encoding: chunked' --data-binary 'chunked' " .. s.url .. "/up"))
    assert.matches("\r\n\r\nCHUNKED$", out)
    out = run(curl("-i " .. s.url .. "/none"))
    assert.equal(204, status_of(out))
    out = run(curl("-i " .. s.url .. "/bad"))
    assert.equal(500, status_of(out))
    out = run(curl("-i " .. s.url .. "/split")) -- no response splitting
    assert.equal(500, status_of(out))
    assert.falsy(out:match("Set%-Cookie"))
    out = run(curl("-i " .. s.url .. "/num"))
    assert.equal(202, status_of(out))
    assert.matches("\r\n\r\n42$", out)
  end)

  it("streams a body function's chunks as they come (chunked)", function()
    local stopped, calls = nil, 0
    s:close(0)
    s = corio.serve{port = 0, handler = function(req)
      local i, n = 0, tonumber(req.query.n) or 3
      return {headers = {["Content-Type"] = "text/plain"}, body = function()
        i = i + 1
        calls = calls + 1
        if req.path == "/fail" and i == 2 then error("body failed") end
        if i > n then return nil end
        local ok, err = pcall(corio.sleep, 0.1)
        if not ok then stopped = tostring(err) error(err) end
        return "chunk" .. i .. "\n"
      end}
    end}
    local out, rc = run(curl("-i -N -w '\n%{time_starttransfer} %{time_total}' " .. s.url .. "/"))
    assert.equal(0, rc)
    assert.matches("\r\nTransfer%-Encoding: chunked\r\n", out)
    assert.matches("\r\n\r\nchunk1\nchunk2\nchunk3\n\n", out)
    local first, total = out:match("\n([%d.]+) ([%d.]+)$")
    assert.truthy(tonumber(total) - tonumber(first) > 0.15, out)
    -- an error half way: the body is cut short, the server goes on
    _, rc = run(curl(s.url .. "/fail"))
    assert.equal(18, rc) -- partial file
    -- the client leaves half way: the stream stops, either when a write
    -- fails (its FIN alone is not a reset) or by cancelling the body
    -- function while it waits
    calls = 0
    _, rc = run(curl("--max-time 0.35 " .. s.url .. "/?n=100"))
    assert.equal(28, rc)
    assert.truthy(wait_until(function() return s:stats().handlers == 0 end, 5))
    assert.truthy(calls < 50, calls)
    if stopped then assert.matches("connection closed", stopped) end
    assert.equal("chunk1\n", (run(curl(s.url .. "/?n=1"))))
  end)

  it("gives a 500 for a handler error and goes on serving", function()
    local out = run(curl("-i " .. s.url .. "/error"))
    assert.equal(500, status_of(out))
    out = run(curl(s.url .. "/after"))
    assert.equal("hello\n", out)
    assert.equal(0, s:stats().handlers)
  end)

  it("reports a handler error once on stderr, with its traceback", function()
    local script = dir .. "/err.lua"
    writefile(script, [[
      local s = corio.serve{port = 0, handler = function(req)
        if req.path == "/error" then error("kaboom") end
        return "ok\n"
      end}
      os.execute("(curl -s --max-time 5 " .. s.url .. "/error; curl -s --max-time 5 " .. s.url .. "/ok) > ]] .. dir .. [[/err.curl 2>&1 &")
      for _ = 1, 500 do
        local f = io.open("]] .. dir .. [[/err.curl")
        local got = f and f:read("a") or ""
        if f then f:close() end
        if got:find("ok") then break end
        corio.sleep(0.01)
      end
      s:close()
    ]])
    local _, rc, err = run(bin .. " " .. script)
    assert.equal(0, rc)
    local _, n = err:gsub("error in handler", "")
    assert.equal(1, n)
    assert.matches("%(GET /error%): .*kaboom", err)
    assert.matches("stack traceback:", err)
    assert.matches("Internal Server Error", readfile(dir .. "/err.curl"))
  end)

  it("reports a repeated handler error once, then counts the ones like it", function()
    local script = dir .. "/noise.lua"
    writefile(script, [[
      local n = 0
      local s = corio.serve{port = 0, handler = function(req)
        n = n + 1
        if req.path == "/other" then error("something else") end
        error("upstream 10.0.0." .. n .. " refused") -- numbers vary
      end}
      local ts = {}
      for i = 1, 200 do ts[i] = corio.spawn(corio.get, s.url .. "/x") end
      corio.wait(ts)
      corio.get(s.url .. "/other")
      corio.get(s.url .. "/x")
      corio.get(s.url .. "/x")
      s:close()
    ]])
    local _, rc, err = run(bin .. " " .. script)
    assert.equal(0, rc, err)
    local _, full = err:gsub("error in handler %(GET /x%)", "")
    assert.equal(2, full, err) -- the first, and the first after /other
    assert.equal(1, select(2, err:gsub("error in handler %(GET /other%)", "")))
    local counted, lines = 0, 0
    for k in err:gmatch("%.%.%. (%d+) more like it %(error in handler: [^\n]*upstream 10%.0%.0%.1 refused%)") do
      counted, lines = counted + tonumber(k), lines + 1
    end
    assert.equal(199, counted, err)
    assert.truthy(lines >= 1 and lines <= 30, err) -- at most one a second
    assert.matches("%.%.%. 1 more like it %(error in handler: [^\n]*upstream 10%.0%.0%.202 refused%)", err)
  end)

  it("keeps its totals in stats() after close()", function()
    local srv = corio.serve{port = 0, handler = function() return "x" end}
    for _ = 1, 3 do assert.equal(200, corio.get(srv.url .. "/").status) end
    srv:close()
    local st = srv:stats()
    assert.equal(3, st.requests)
    assert.equal(0, st.rejected)
    assert.equal(0, st.connections)
    assert.equal(0, st.inflight)
  end)

  it("answers {json = value} with application/json; an unknown field is a 500 that names it", function()
    local script = dir .. "/json.lua"
    writefile(script, [[
      local s = corio.serve{port = 0, handler = function(req)
        if req.path == "/j" then return {status = 201, json = {ok = true, list = {1, 2}}} end
        if req.path == "/ct" then
          return {json = "x", headers = {["content-type"] = "application/vnd.x+json"}}
        end
        if req.path == "/typo" then return {jsn = {1}} end
        if req.path == "/both" then return {json = 1, body = "x"} end
        if req.path == "/fn" then return {json = print} end
      end}
      for _, p in ipairs{"/j", "/ct", "/typo", "/both", "/fn"} do
        local r = corio.get(s.url .. p)
        print(p, r.status, r.headers["content-type"], r.body)
      end
      s:close()
    ]])
    local out, rc, err = run(bin .. " " .. script)
    assert.equal(0, rc, err)
    assert.matches('/j\t201\tapplication/json\t{[^\n]*"list":%[1,2%]', out)
    assert.matches('/ct\t200\tapplication/vnd.x%+json\t"x"', out)
    for _, p in ipairs{"/typo", "/both", "/fn"} do
      assert.matches(p .. "\t500\t", out)
    end
    assert.matches("%(GET /typo%): unknown field 'jsn' in the handler's answer %(expected status, headers, body or json%)", err)
    assert.matches("%(GET /both%): give body or json, not both", err)
    assert.matches("%(GET /fn%): json: Cannot serialise function", err)
  end)

  it("serves wrk's 100 keep-alive connections with no error", function()
    local out, rc = run("wrk -t2 -c100 -d2s " .. s.url .. "/", 30)
    assert.equal(0, rc)
    local reqs = tonumber(out:match("(%d+) requests in"))
    -- a count, not a rate: at least one answer per connection (a rate would
    -- flake under ASan on a loaded machine; bench/ measures the rate)
    assert.truthy(reqs and reqs >= 100, out)
    assert.falsy(out:match("Socket errors"), out)
    assert.falsy(out:match("Non%-2xx"), out)
  end)

  describe("malformed input, each while another client is served:", function()
    local function with_normal_client(script)
      local normal = bg(curl(s.url .. "/sleep?s=0.3"))
      local out, rc = run(script)
      local nout, nrc = finish(normal)
      assert.equal(0, nrc)
      assert.equal("hello\n", nout)
      return out, rc
    end

    it("a bad request line gets 400 and is closed", function()
      local out, rc = with_normal_client(raw(s.port, "GARBAGE / WHAT\r\n\r\n"))
      assert.equal(0, rc) -- cat ended: the server closed
      assert.equal(400, status_of(out))
      assert.matches("\r\nConnection: close\r\n", out)
    end)

    it("a huge header gets 431", function()
      local out, rc = with_normal_client(raw(s.port,
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(40000) .. "\r\n\r\n"))
      assert.equal(0, rc)
      assert.equal(431, status_of(out))
    end)

    it("max_header_bytes moves the head limit both ways", function()
      -- the option counts the target, and each header's name, value and 4
      -- bytes: this head counts 39 + n
      local function head(n)
        return "GET /t HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
          .. ("a"):rep(n) .. "\r\n\r\n"
      end
      local function status(port, n)
        local out, rc = with_normal_client(raw(port, head(n)))
        assert.equal(0, rc)
        return status_of(out)
      end
      assert.equal(200, status(s.port, 16 * 1024 - 39))
      assert.equal(431, status(s.port, 16 * 1024 - 38))
      local big <close> = corio.serve{port = 0, handler = hello,
                                      max_header_bytes = 256 * 1024}
      assert.equal(200, status(big.port, 100 * 1024)) -- was 431 at 80 KiB
      assert.equal(200, status(big.port, 256 * 1024 - 39))
      assert.equal(431, status(big.port, 256 * 1024 - 38))
    end)

    it("a bad chunked body gets 400", function()
      local out, rc = with_normal_client(raw(s.port,
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"))
      assert.equal(0, rc)
      assert.equal(400, status_of(out))
    end)

    it("a client sending one byte at a time is cut off after the header timeout", function()
      s:close(0)
      s = corio.serve{port = 0, handler = hello, header_timeout = 0.5}
      -- the reader notes when the server's FIN (after the 408) arrived
      local slow = bg(([[bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d
        echo "T0 $(date +%%s.%%N)"
        (timeout 5 cat <&3; echo; echo "T1 $(date +%%s.%%N)") &
        for c in G E T " " / s l o w " " H T T P; do printf "%%s" "$c" >&3 2>/dev/null || break; sleep 0.2; done
        wait']]):format(s.port))
      assert.truthy(wait_until(function() return s:stats().connections == 1 end))
      local nout, nrc = run(curl(s.url .. "/normal"))
      assert.equal(0, nrc)
      assert.equal("hello\n", nout)
      local out = finish(slow)
      local took = tonumber(out:match("T1 ([%d.]+)")) - tonumber(out:match("T0 ([%d.]+)"))
      assert.truthy(took >= 0.45 and took < 1.5, "cut after " .. took)
      assert.equal(408, status_of(out:match("HTTP/1%.1.*")))
      assert.truthy(wait_until(function() return s:stats().connections == 0 end, 3))
    end)
  end)

  it("answers overload_status at once past max_inflight", function()
    s:close(0)
    s = corio.serve{port = 0, handler = hello, max_inflight = 2, overload_status = 502}
    local jobs = {}
    for i = 1, 4 do
      jobs[i] = bg(code_of(s.url .. "/sleep?s=0.5"))
      -- one at a time, so that the first two are in flight
      assert.truthy(wait_until(function() return s:stats().requests >= i end))
    end
    local codes = {}
    for i = 1, 4 do codes[i] = tonumber((finish(jobs[i]))) end
    assert.same({200, 200, 502, 502}, codes)
    assert.equal(2, s:stats().rejected)
    -- and the default status is 503
    s:close(0)
    s = corio.serve{port = 0, handler = hello, max_inflight = 1}
    local first = bg(code_of(s.url .. "/sleep?s=0.3"))
    assert.truthy(wait_until(function() return s:stats().inflight == 1 end))
    assert.equal("503\n", (run(code_of(s.url .. "/"))))
    assert.equal("200\n", (finish(first)))
  end)

  it("close() lets a request in flight finish, then refuses connections", function()
    local job = bg(curl(s.url .. "/sleep?s=0.4"))
    assert.truthy(wait_until(function() return last ~= nil end))
    local t0 = corio.time()
    s:close(5)
    local took = corio.time() - t0
    -- waited for the request (0.4 s), not for the deadline (5 s)
    assert.truthy(took > 0.2 and took < 4.5, "close took " .. took)
    assert.equal("hello\n", (finish(job)))
    assert.is_true(s.closed)
    local _, rc = run(curl(s.url .. "/"))
    assert.equal(7, rc) -- connection refused
    s = nil
  end)

  it("close() inside a task waits, and the deadline cuts what is left", function()
    local cancelled
    s:close(0)
    s = corio.serve{port = 0, handler = function(req)
      last = req
      local ok, err = pcall(corio.sleep, 10)
      cancelled = not ok and tostring(err)
      error(err)
    end}
    local job = bg(curl(s.url .. "/"))
    assert.truthy(wait_until(function() return last ~= nil end))
    local t0 = corio.time()
    local closer = corio.spawn(function() s:close(0.2) return "closed" end)
    assert.equal("closed", closer:await())
    local took = corio.time() - t0
    -- the deadline (0.2 s) cut the handler's sleep (10 s)
    assert.truthy(took >= 0.15 and took < 5, "took " .. took)
    local out, rc = finish(job)
    assert.equal("", out)
    assert.equal(52, rc) -- empty reply: dropped, not answered
    assert.truthy(wait_until(function() return cancelled end))
    assert.matches("connection closed", cancelled)
    s = nil
  end)

  it("cancels the handler task when the client resets the connection", function()
    local started, cancelled, finished
    s:close(0)
    s = corio.serve{port = 0, handler = function(req)
      started = corio.time()
      local ok, err = pcall(corio.sleep, 10)
      if not ok then
        cancelled = tostring(err)
        error(err)
      end
      finished = true
      return "too late\n"
    end}
    local go = dir .. "/reset-go"
    local job = bg(pyclient(s.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "reset", go))
    assert.truthy(wait_until(function() return started ~= nil end))
    writefile(go, "")
    local _, rc = finish(job)
    assert.equal(0, rc)
    assert.truthy(wait_until(function() return cancelled ~= nil end))
    assert.matches("connection closed before the handler answered", cancelled)
    assert.is_nil(finished)
    assert.truthy(wait_until(function() return s:stats().handlers == 0 end))
    assert.equal(0, s:stats().inflight)
  end)

  it("answers a client that shut down its writing side after its request", function()
    local cancelled
    s:close(0)
    s = corio.serve{port = 0, handler = function(req)
      local ok, err = pcall(corio.sleep, 0.5)
      if not ok then
        cancelled = tostring(err)
        error(err)
      end
      return "answered " .. req.method .. "\n"
    end}
    -- keep-alive, then two pipelined requests: every one is answered
    local out, rc = run(pyclient(s.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "shut"))
    assert.equal(0, rc)
    assert.is_nil(cancelled)
    assert.equal(200, status_of(out))
    assert.matches("\r\nConnection: close\r\n", out)
    assert.equal("answered GET\n", out:match("\r\n\r\n(.*)$"))
    out, rc = run(pyclient(s.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", "shut"))
    assert.equal(0, rc)
    assert.is_nil(cancelled)
    assert.matches("answered GET\n.*answered DELETE\n$", out)
    -- a request cut short by the FIN: no handler, no answer
    local before = s:stats().requests
    out, rc = run(pyclient(s.port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", "shut"))
    assert.equal(0, rc)
    assert.equal("", out)
    assert.equal(before, s:stats().requests)
  end)

  it("keeps 200 idle connections from delaying others, and closes them after the header timeout", function()
    s:close(0)
    s = corio.serve{port = 0, handler = hello, header_timeout = 2}
    -- the idle clients hold their connections longer than the timeout
    local idle = bg(([[bash -c 'for i in $(seq 200); do exec {fd}<>/dev/tcp/127.0.0.1/%d || exit 1; done; sleep 6']])
      :format(s.port))
    assert.truthy(wait_until(function() return s:stats().connections >= 200 end))
    local opened = corio.time()
    local times = {}
    for i = 1, 5 do
      local out = run(curl("-o /dev/null -w '%{time_total}' " .. s.url .. "/"))
      times[i] = tonumber(out)
    end
    table.sort(times)
    -- answered while all 200 were still open, each well before the header
    -- timeout: nobody waited for the idle ones to go
    assert.truthy(s:stats().connections >= 200)
    assert.truthy(wait_until(function() return s:stats().connections == 0 end, 5))
    local closed_after = corio.time() - opened
    io.stderr:write(("\n[serve] 200 idle connections: request time median %.1f ms, max %.1f ms; "
      .. "idle ones closed %.2f s after opening (header_timeout 2 s)\n")
      :format(times[3] * 1000, times[5] * 1000, closed_after))
    assert.truthy(times[5] < 1, "slowest request " .. times[5])
    assert.truthy(closed_after < 5) -- by the server, not by the clients (6 s)
    finish(idle)
  end)

  it("works as a to-be-closed variable and at top level", function()
    s:close(0)
    local url
    do
      local srv <close> = corio.serve{port = 0, handler = hello}
      url = srv.url
      assert.equal("hello\n", (run(curl(url .. "/"))))
    end
    local _, rc = run(curl(url .. "/"))
    assert.equal(7, rc)
    -- inside a task too
    local t = corio.spawn(function()
      local srv <close> = corio.serve{port = 0, handler = hello}
      url = srv.url
      corio.sleep(0.01)
    end)
    t:await()
    _, rc = run(curl(url .. "/"))
    assert.equal(7, rc)
    s = nil
  end)

  it("close() in one of its own handlers does not wait for itself", function()
    s:close(0)
    s = corio.serve{port = 0, handler = function(req)
      if req.path == "/shutdown" then
        s:close()
        return "bye\n"
      end
      return "hello\n"
    end}
    local t0 = corio.time()
    assert.equal("bye\n", (run(curl(s.url .. "/shutdown"))))
    assert.truthy(wait_until(function() return s.closed end))
    assert.truthy(corio.time() - t0 < 10)
    s = nil
  end)

  it("wait() returns once the server is closed", function()
    corio.spawn(function() corio.sleep(0.05) s:close(0) end)
    s:wait()
    assert.is_true(s.closed)
    assert.matches("closed>$", tostring(s))
    s = nil
  end)

  it("refuses bad options, naming them", function()
    local function err_of(opts)
      local ok, e = pcall(corio.serve, opts)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.matches("option 'handler'", err_of{port = 0})
    assert.matches("option 'handler' must be a function", err_of{handler = 1})
    assert.matches("unknown option 'prot'", err_of{prot = 0, handler = hello})
    assert.matches("option 'port' must be an integer", err_of{port = 70000, handler = hello})
    assert.matches("option 'port'", err_of{port = "80", handler = hello})
    assert.matches("option 'max_inflight'", err_of{max_inflight = -1, handler = hello})
    assert.matches("option 'overload_status'", err_of{overload_status = 99, handler = hello})
    assert.matches("option 'header_timeout'", err_of{header_timeout = 0, handler = hello})
    assert.matches("option 'host' must be a string", err_of{host = 1, handler = hello})
    local e = err_of{port = s.port, handler = hello}
    assert.matches("cannot listen on 127%.0%.0%.1:%d+: address already in use", e)
    local ok, ev = pcall(corio.serve, {port = s.port, handler = hello})
    assert.is_false(ok)
    assert.equal("addrinuse", ev.kind)
  end)
end)

describe("a server nobody closed", function()
  it("is closed by lua_close, its handler task ended (plain lua5.4)", function()
    local lua = os.getenv("CORIO_LUA") or "lua5.4"
    local script = dir .. "/forget.lua"
    writefile(script, ([[
      package.cpath = %q .. "/?.so;" .. package.cpath
      local corio = require "corio"
      local s = corio.serve{port = 0, handler = function() corio.sleep(10) return "late" end}
      os.execute("env -u LD_PRELOAD curl -s --max-time 5 " .. s.url .. "/ > /dev/null &")
      for _ = 1, 300 do
        if s:stats().handlers == 1 then break end
        corio.sleep(0.01)
      end
      print("handlers", s:stats().handlers)
    ]]):format(bin:match("^(.*)/[^/]*$") or "."))
    local t0 = corio.time()
    local out, rc = run(lua .. " " .. script)
    assert.equal("handlers\t1\n", out)
    assert.equal(0, rc)
    assert.truthy(corio.time() - t0 < 8) -- not the handler's 10 s
  end)
end)

describe("scripts/backend.lua", function()
  it("serves the article's backend and stops on Ctrl-C", function()
    local base = dir .. "/backend"
    local p = assert(io.popen(("%s %sscripts/backend.lua --port 0 --latency 0.3 --capacity 2 > %s.out 2> %s.err & echo $!")
      :format(bin, root, base, base)))
    local pid = p:read("l")
    p:close()
    assert.truthy(wait_until(function() return (readfile(base .. ".out") or ""):match("^http") end))
    local url = readfile(base .. ".out"):match("^(%S+)")
    assert.equal("Welcome\n", (run(curl(url .. "/welcome"))))
    local jobs = {}
    for i = 1, 4 do jobs[i] = bg(code_of(url .. "/api/afk/pod?current=1&pageSize=100")) end
    local codes = {}
    for i = 1, 4 do codes[#codes + 1] = tonumber((finish(jobs[i]))) end
    table.sort(codes)
    assert.same({200, 200, 502, 502}, codes)
    local body = run(curl(url .. "/api/x?y=1"))
    assert.matches('^{"path": "/api/x", "query": "y=1"', body)
    assert.equal("404\n", (run(code_of(url .. "/other"))))
    os.execute("kill -INT " .. pid)
    assert.truthy(wait_until(function() return not os.execute("kill -0 " .. pid .. " 2>/dev/null") end, 5))
  end)

  it("prints a usage line for a bad option", function()
    local _, rc, err = run(bin .. " " .. root .. "scripts/backend.lua --port nope")
    assert.equal(2, rc)
    assert.matches("usage: corio scripts/backend.lua", err)
  end)

  it("is a module other scripts require", function()
    package.path = root .. "scripts/lib/?.lua;" .. package.path
    local backend = require "backend"
    local s <close> = backend.start{latency = 0.5, capacity = 5}
    local out = run(curl("-i " .. s.url .. "/api/v1"))
    assert.equal(200, status_of(out))
    assert.matches("application/json", out)
    -- /welcome takes a tenth of the latency by default, as in the article
    -- (a latency of 5 s: a tenth and the whole are far apart, whatever the
    -- load)
    local slow <close> = backend.start{latency = 5}
    local t = tonumber((run(curl("-o /dev/null -w '%{time_total}' " .. slow.url .. "/welcome"))))
    assert.truthy(t >= 0.45 and t < 5, t)
    local fast <close> = backend.start{latency = 5, welcome_latency = 0}
    t = tonumber((run(curl("-o /dev/null -w '%{time_total}' " .. fast.url .. "/welcome"))))
    assert.truthy(t < 0.45, t)
    assert.has_error(function() backend.start{latence = 1} end, "backend.start: unknown option 'latence'")
  end)
end)

-- corio's own client against corio's own server, in one process: the
-- handler tasks and the fetching tasks share the loop.
describe("corio.serve with corio.fetch", function()
  it("carries methods, headers, query and body both ways", function()
    local srv <close> = corio.serve{handler = function(req)
      return {status = 201, headers = {["X-Echo-Method"] = req.method,
                                       ["X-Echo-Header"] = req.headers["x-test"]},
              body = ("%s|%s|%s"):format(req.path, req.query.q, req.body)}
    end}
    local r = corio.post(srv.url .. "/p%20ath?q=a+b%26c", {body = "payload",
                                                            headers = {["X-Test"] = "v1"}})
    assert.equal(201, r.status)
    assert.equal("POST", r.headers["x-echo-method"])
    assert.equal("v1", r.headers["X-Echo-Header"])
    assert.equal("/p ath|a b&c|payload", r.body)
  end)

  it("runs 500 slow handlers at once: as long as one, not 500", function()
    local srv <close> = corio.serve{handler = function(req)
      corio.sleep(0.2)
      return req.query.i
    end}
    local t0 = corio.time()
    local tasks = {}
    for i = 1, 500 do
      tasks[i] = corio.spawn(function() return corio.get(srv.url .. "/?i=" .. i).body end)
    end
    local bodies = corio.gather(tasks)
    local secs = corio.time() - t0
    for i = 1, 500 do assert.equal(tostring(i), bodies[i]) end
    -- one after another would be 100 s; at once, 0.2 s plus the work
    assert.is_true(secs < 10, ("500 handlers of 0.2 s took %.2f s"):format(secs))
  end)

  it("answers 502 past max_inflight, as the article's backend does", function()
    local srv <close> = corio.serve{max_inflight = 10, overload_status = 502,
                                    handler = function() corio.sleep(0.2) return "ok" end}
    local tasks = {}
    for i = 1, 30 do tasks[i] = corio.spawn(function() return corio.get(srv.url).status end) end
    local count = {}
    for _, st in ipairs(corio.gather(tasks)) do count[st] = (count[st] or 0) + 1 end
    assert.equal(10, count[200])
    assert.equal(20, count[502])
  end)

  it("a handler error is a 500 for that request only", function()
    local srv <close> = corio.serve{handler = function(req)
      if req.path == "/bad" then error("boom") end
      return "fine"
    end}
    local a = corio.spawn(corio.get, srv.url .. "/bad")
    local b = corio.spawn(corio.get, srv.url .. "/good")
    assert.equal(500, a:await().status)
    assert.equal("fine", b:await().body)
  end)

  it("a cancelled fetch leaves its handler to finish, unanswered", function()
    -- the fetch closes its connection: a FIN, which may be a client
    -- waiting for its answer after shutdown(SHUT_WR), so the handler is
    -- not cancelled; its answer goes to nobody and the server goes on
    local outcome
    local srv <close> = corio.serve{handler = function()
      local ok, err = pcall(corio.sleep, 0.3)
      outcome = ok and "finished" or tostring(err)
      if not ok then error(err, 0) end
      return "late"
    end}
    local t = corio.spawn(corio.get, srv.url)
    assert.truthy(wait_until(function() return srv:stats().handlers == 1 end))
    t:cancel()
    assert.has_error(function() t:await() end)
    assert.truthy(wait_until(function() return srv:stats().handlers == 0 end, 5))
    assert.equal("finished", outcome)
    assert.equal(0, srv:stats().inflight)
    assert.equal("late", corio.get(srv.url).body)
  end)
end)

end)
