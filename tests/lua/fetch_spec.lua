-- The HTTP client: corio.fetch/get/post, responses, FetchError kinds,
-- cancellation, sessions and corio.blocking, against a private nginx on
-- loopback (tests/support/nginx.sh, stopped by PID in teardown).
local corio = require "corio"

local shell = require "tests.lua.support.shell"
local bin, lua, sh = shell.bin, shell.lua, shell.sh

local free_port = shell.free_port

local fetch_error = shell.fetch_error

local function in_flight() return corio.stats().fetches end

describe("fetch", function()
  local base, dir, port, tls_base, raw_pid, raw_port

  setup(function()
    port, dir = free_port(), os.tmpname()
    os.remove(dir)
    local tls_port = free_port()
    local out, rc = sh(("NGINX_OWNER=$PPID bash tests/support/nginx.sh start %d %s %d"):format(port, dir, tls_port))
    assert(rc == 0, out)
    base = "http://127.0.0.1:" .. port
    tls_base = "https://127.0.0.1:" .. tls_port
    -- a server of broken answers, by path: /short promises 100 bytes,
    -- sends 10 and closes; /rst does the same with a TCP reset;
    -- /badchunk sends a chunk size that is not hex; /garbage answers with
    -- no status line at all, /badstatus with a bad one; /fold has a folded
    -- line where its first field should be; /hugeheaders sends
    -- 1.1 MB of header fields, /hugeline one field of 200 KB; /closeupload
    -- closes as soon as the request begins (a reset under the upload)
    raw_port = free_port()
    local py = ([[
import socket, struct, time
answers = {
    b"/short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
    b"/badchunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n",
    b"/garbage": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    b"/badstatus": b"HTTP/1.1 abc OK\r\n\r\n",
    b"/fold": b"HTTP/1.1 302 Found\r\n Location: /r\r\nContent-Length: 0\r\n\r\n",
    b"/hugeheaders": b"HTTP/1.1 200 OK\r\n" + b"".join(
        b"X-Filler-%%04d: %%s\r\n" %% (i, b"f" * 980) for i in range(1100)),
    b"/hugeline": b"HTTP/1.1 200 OK\r\nX-Big: " + b"f" * 200000 + b"\r\n\r\n",
}
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", %d)); s.listen(16); s.settimeout(60)
for _ in range(60):
    try: c, _ = s.accept()
    except Exception: break
    req = c.recv(65536).split(b" ")
    path = req[1] if len(req) > 1 else b""
    if path == b"/closeupload":
        c.close()
        continue
    try: c.sendall(answers.get(path, answers[b"/short"]))
    except OSError: pass
    if path == b"/rst":
        time.sleep(0.1)  # the client reads the part first, then the reset
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
]]):format(raw_port)
    local f = assert(io.open(dir .. "/raw.py", "w"))
    f:write(py)
    f:close()
    raw_pid = tonumber((sh(("python3 %s/raw.py >/dev/null 2>&1 & echo $!"):format(dir))))
    for _ = 1, 50 do -- wait until it listens (bounded: 5 s)
      if sh(("ss -ltn 'sport = :%d' | grep -c LISTEN"):format(raw_port)):match("^1") then break end
      corio.sleep(0.1)
    end
  end)

  teardown(function()
    if raw_pid then os.execute("kill " .. raw_pid .. " 2>/dev/null") end
    if dir then
      sh(("bash tests/support/nginx.sh stop %d %s"):format(port, dir))
      os.execute("rm -rf '" .. dir .. "'")
    end
  end)

  describe("bodies", function()
    it("arrive byte for byte: 0 B, 1 KiB, 100 KiB, 1 MiB, chunked", function()
      local cases = {
        {"/bytes/0", ""},
        {"/bytes/1k", ("a"):rep(1024)},
        {"/bytes/100k", ("b"):rep(102400)},
        {"/bytes/1m", ("c"):rep(1048576)},
        {"/chunked", ("0123456789"):rep(100000)},
      }
      for _, c in ipairs(cases) do
        local r = corio.fetch(base .. c[1])
        assert.equal(200, r.status)
        assert.is_true(r.ok)
        assert.equal(#c[2], #r.body, c[1])
        assert.is_true(r.body == c[2], c[1])
        assert.equal(r.body, r:text())
      end
    end)

    it("holds a big body once: the string is the buffer it arrived in", function()
      local function peak_kb() -- VmHWM, the peak resident size
        local f = assert(io.open("/proc/self/status"))
        local kb = tonumber(f:read("a"):match("VmHWM:%s*(%d+)"))
        f:close()
        return kb
      end
      local function reset_peak() -- to the current resident size
        local f = assert(io.open("/proc/self/clear_refs", "w"))
        f:write("5")
        f:close()
      end
      collectgarbage()
      reset_peak()
      local before = peak_kb()
      local r = corio.get(base .. "/bytes/32m")
      local grew = peak_kb() - before
      assert.equal(33554432, #r.body)
      assert.equal(("d"):rep(64), r.body:sub(-64))
      -- a copy into a Lua string would hold 64 MiB at its peak
      assert.is_true(grew < 48 * 1024, grew .. " KiB")
    end)

    it("gives the same response inside a task as at top level", function()
      local r = corio.spawn(corio.get, base .. "/hello"):await()
      assert.equal("hello world\n", r.body)
      assert.equal(base .. "/hello", r.url)
      assert.equal("1.1", r.http_version)
      assert.matches("^<Response %[200%] http://", tostring(r))
    end)

    it("404 and 502 are responses, not errors", function()
      local r = corio.fetch(base .. "/status/404")
      assert.equal(404, r.status)
      assert.is_false(r.ok)
      assert.equal("not found\n", r.body)
      assert.equal(502, corio.get(base .. "/status/502").status)
    end)

    it("reports timing in seconds", function()
      local t = corio.fetch(base .. "/delay/50").timing
      for _, k in ipairs {"dns", "connect", "tls", "ttfb", "total"} do
        assert.equal("number", type(t[k]), k)
        assert.is_true(t[k] >= 0, k)
      end
      assert.is_true(t.total >= 0.045, t.total)
      assert.is_true(t.total < 5, t.total)
      assert.is_true(t.ttfb <= t.total)
    end)
  end)

  describe("headers", function()
    it("are sent, and read back in any case", function()
      local r = corio.get(base .. "/headers", {headers = {["X-Test"] = "hello 1"}})
      assert.equal("hello 1", r.body)
      assert.equal("yes", r.headers["x-reply"])
      assert.equal("yes", r.headers["X-Reply"])
      assert.equal(r.headers["content-type"], r.headers["Content-Type"])
      assert.same({"a=1", "b=2"}, r.headers["set-cookie"])
      local seen = 0
      for k, v in pairs(r.headers) do
        assert.equal(k:lower(), k)
        assert.is_truthy(type(v) == "string" or k == "set-cookie")
        seen = seen + 1
      end
      assert.is_true(seen >= 4, seen)
    end)

    it("take numbers as values", function()
      assert.equal("42", corio.get(base .. "/headers", {headers = {["x-test"] = 42}}).body)
    end)

    it("with CR or LF are refused before anything is sent", function()
      for _, bad in ipairs {"a\r\nX-Evil: 1", "a\nb", "a\0b"} do
        local ok, err = pcall(corio.get, base .. "/headers", {headers = {["X-Test"] = bad}})
        assert.is_false(ok)
        assert.matches("headers", tostring(err))
        assert.matches("CR, LF", tostring(err))
      end
      local ok, err = pcall(corio.get, base .. "/hello", {headers = {["Bad Name"] = "x"}})
      assert.is_false(ok)
      assert.matches("invalid header name", err)
      assert.equal(0, in_flight())
    end)
  end)

  describe("request bodies", function()
    it("body is echoed byte for byte, NULs included", function()
      local body = "x\0y" .. ("z"):rep(70000)
      local r = corio.post(base .. "/echo", {body = body})
      assert.is_true(r.body == body)
    end)

    it("json is encoded, and json() decodes", function()
      local r = corio.post(base .. "/echo", {json = {a = 1, list = {"x", "y"}}})
      local v = r:json()
      assert.equal(1, v.a)
      assert.same({"x", "y"}, v.list)
    end)

    it("big bodies: text() is the body, json() decodes a long document", function()
      local r = corio.get(base .. "/bytes/100k")
      local text = r:text()
      assert.equal(("b"):rep(102400), text)
      assert.is_true(rawequal(text, r.body))
      local big = {}
      for i = 1, 64 do big[i] = ("[%d,%q]"):format(i, ("j"):rep(400)) end
      local j = corio.post(base .. "/echo", {body = "[" .. table.concat(big, ",") .. "]"}):json()
      assert.equal(64, #j)
      assert.equal(("j"):rep(400), j[64][2])
    end)

    it("form is urlencoded with sorted keys", function()
      local r = corio.post(base .. "/echo", {form = {name = "a b&c", n = 3, tag = {"x", "é"}}})
      assert.equal("n=3&name=a+b%26c&tag=x&tag=%C3%A9", r.body)
    end)

    it("method is sent as given", function()
      assert.equal("PUT", corio.fetch(base .. "/method", {method = "PUT", body = "x"}).body)
      assert.equal("POST", corio.post(base .. "/method").body)
      assert.equal("GET", corio.get(base .. "/method").body)
    end)

    it("json() on a body that is not JSON raises a clear error", function()
      local ok, err = pcall(function() return corio.get(base .. "/hello"):json() end)
      assert.is_false(ok)
      assert.matches("invalid JSON", err)
    end)
  end)

  describe("redirects", function()
    it("are followed; url is the final one", function()
      local r = corio.fetch(base .. "/redirect/3")
      assert.equal(200, r.status)
      assert.equal("hello world\n", r.body)
      assert.equal(base .. "/hello", r.url)
    end)

    it("are limited (default 10, or the number given)", function()
      assert.equal(200, corio.fetch(base .. "/redirect/10").status)
      assert.equal("protocol", fetch_error(corio.fetch, base .. "/redirect/11").kind)
      local err = fetch_error(corio.fetch, base .. "/redirect/5", {follow_redirects = 3})
      assert.equal("protocol", err.kind)
      assert.matches("redirect", err.message)
    end)

    it("follow_redirects = false returns the 302", function()
      local r = corio.fetch(base .. "/redirect/2", {follow_redirects = false})
      assert.equal(302, r.status)
      assert.equal("/redirect/1", r.headers.location)
    end)
  end)

  describe("errors", function()
    it("connect: a closed port", function()
      local err = fetch_error(corio.fetch, "http://127.0.0.1:" .. free_port() .. "/")
      assert.equal("connect", err.kind)
      assert.equal(corio.FetchError.connect, err)
      assert.matches("127.0.0.1", err.url)
      assert.is_true(#err.message > 0)
      assert.matches("^FetchError%(connect%)", tostring(err))
    end)

    it("out of descriptors: a clear connect error, the others succeed, then it recovers", function()
      -- in a child whose open-file limit is 64 (soft and hard), 100 fetches at once
      local s = shell.script(([[
local tasks = {}
for i = 1, 100 do tasks[i] = corio.spawn(function() return corio.get("%s/delay/200").status end) end
local ok, emfile = 0, 0
for _, r in ipairs(corio.gather(tasks, {return_exceptions = true})) do
  if r == 200 then ok = ok + 1
  elseif r.kind == "connect" and r.message:match("too many open files") then emfile = emfile + 1 end
end
print(ok + emfile == 100 and ok > 0 and emfile > 0, corio.get("%s/hello").status)
-- idle connections keep at most half the limit: a server still gets its socket
local srv <close> = corio.serve{handler = function() return "x" end}
print(corio.get(srv.url).body)
]]):format(base, base))
      local out, rc = sh("timeout 30 prlimit --nofile=64 " .. bin .. " " .. s)
      os.remove(s)
      assert.equal(0, rc, out)
      assert.equal("true\t200\nx\n", out)
    end)

    it("dns: a name under .invalid", function()
      local err = fetch_error(corio.get, "http://no-such-host.invalid/")
      assert.equal("dns", err.kind)
      assert.matches("no%-such%-host", err.message)
    end)

    it("dns that never answers: a timeout at the deadline, the loop never stalls", function()
      -- libcurl would join its resolver thread at the timeout: the loop then
      -- stood still until getaddrinfo gave up (10 s here)
      local s = shell.script([[
        local ticks = 0
        local ticker = corio.spawn(function()
          while true do corio.sleep(0.01) ticks = ticks + 1 end
        end)
        local t0 = corio.time()
        local ok, e = pcall(corio.get, "http://never.example/", {timeout = 1})
        local secs = corio.time() - t0
        corio.sleep(0.2) -- the loop still turns after the timeout
        print(ok, e.kind, ("%.2f"):format(secs), ticks)
        ticker:cancel()
      ]])
      local t0 = corio.time()
      local out, rc = sh("timeout -s KILL 20 unshare -rnm bash tests/support/silent-dns.sh " ..
        bin .. " " .. s)
      local wall = corio.time() - t0
      os.remove(s)
      assert.equal(0, rc, out)
      local ok, kind, secs, ticks = out:match("^(%a+)\t(%a+)\t([%d.]+)\t(%d+)\n$")
      assert.equal("false", ok, out)
      assert.equal("timeout", kind, out)
      -- at the deadline (1 s), far from getaddrinfo's 10 s
      assert.is_true(tonumber(secs) >= 0.9 and tonumber(secs) < 5, out)
      -- 1.2 s of 10 ms ticks: at least a quarter of them, on a loaded machine
      assert.is_true(tonumber(ticks) >= 30, out)
      assert.is_true(wall < 8, ("the program took %.1f s to end"):format(wall))
    end)

    it("timeout: a delay longer than the timeout", function()
      local t0 = corio.time()
      local err = fetch_error(corio.fetch, base .. "/delay/3000", {timeout = 0.2})
      assert.equal("timeout", err.kind)
      assert.is_true(err == corio.TimeoutError) -- compared by kind
      assert.is_true(corio.time() - t0 < 2.9) -- before the 3 s delay ends
      assert.equal(0, in_flight())
    end)

    it("unsupported_scheme: file:// directly and by redirect", function()
      assert.equal("unsupported_scheme", fetch_error(corio.fetch, "file:///etc/passwd").kind)
      local err = fetch_error(corio.fetch, base .. "/redirect-file")
      assert.equal("unsupported_scheme", err.kind)
      assert.not_matches("root:", err.message)
    end)

    it("invalid_url", function()
      assert.equal("invalid_url", fetch_error(corio.fetch, "http://exa mple.com/").kind)
      assert.equal("invalid_url", fetch_error(corio.fetch, "http://[::1/").kind)
      assert.equal("invalid_url", fetch_error(corio.fetch, "http://a\0b/").kind)
    end)

    it("too_large: a body over max_body (known and unknown length)", function()
      assert.equal("too_large", fetch_error(corio.fetch, base .. "/bytes/1m", {max_body = 1000}).kind)
      assert.equal("too_large", fetch_error(corio.fetch, base .. "/chunked", {max_body = 5000}).kind)
      assert.equal(1024, #corio.fetch(base .. "/bytes/1k", {max_body = 1024}).body)
    end)

    it("reset: the connection closes (FIN or RST) before the body is complete", function()
      for _, path in ipairs({"/short", "/rst"}) do
        local err = fetch_error(corio.fetch, "http://127.0.0.1:" .. raw_port .. path)
        assert.equal("reset", err.kind, path .. ": " .. err.message)
      end
    end)

    it("too_large: response header fields over libcurl's caps (in all, in one line)", function()
      for _, path in ipairs {"/hugeheaders", "/hugeline"} do
        local err = fetch_error(corio.fetch, "http://127.0.0.1:" .. raw_port .. path)
        assert.equal("too_large", err.kind, path)
      end
      assert.equal(200, corio.get(base .. "/hello").status) -- nothing else hurt
    end)

    it("reset: the server closes during the upload; SIGPIPE kills nobody (plain lua5.4)", function()
      local script = dir .. "/upload.lua"
      local f = assert(io.open(script, "w"))
      f:write(([[
        package.cpath = %q .. "/?.so;" .. package.cpath
        local corio = require "corio"
        local ok, err = pcall(corio.post, %q, {body = ("x"):rep(8 * 1024 * 1024)})
        io.write(ok and "no error" or err.kind)
      ]]):format(bin:match("^(.*)/[^/]*$") or ".",
                 "http://127.0.0.1:" .. raw_port .. "/closeupload"))
      f:close()
      local out, rc = sh(lua .. " " .. script)
      assert.equal("reset", out)
      assert.equal(0, rc)
    end)

    it("protocol: a chunk size that is not hex, an answer that is not HTTP", function()
      local err = fetch_error(corio.fetch, "http://127.0.0.1:" .. raw_port .. "/badchunk")
      assert.equal("protocol", err.kind, err.message)
      for _, path in ipairs({"/garbage", "/badstatus"}) do
        err = fetch_error(corio.fetch, "http://127.0.0.1:" .. raw_port .. path)
        assert.equal("protocol", err.kind, path .. ": " .. err.message)
      end
      -- the server goes on answering the others
      assert.equal("hello world\n", corio.get(base .. "/hello").body)
    end)

    it("protocol: a folded first field line, after any response, from any host", function()
      -- libcurl 7.88 would extend a freed field of the handle's transfer
      -- before: a crash if corio reused easy handles
      for _, host in ipairs({"127.0.0.1", "localhost"}) do
        assert.equal("hello world\n", corio.get(base .. "/hello").body)
        local err = fetch_error(corio.fetch, "http://" .. host .. ":" .. raw_port .. "/fold")
        assert.equal("protocol", err.kind, err.message)
      end
      local err = fetch_error(corio.blocking.get, "http://127.0.0.1:" .. raw_port .. "/fold")
      assert.equal("protocol", err.kind, err.message) -- the same word for the same answer
      assert.equal("hello world\n", corio.get(base .. "/hello").body)
    end)

    it("tls: a self-signed certificate is refused unless verify_tls = false", function()
      local err = fetch_error(corio.fetch, tls_base .. "/hello")
      assert.equal("tls", err.kind)
      local r = corio.fetch(tls_base .. "/hello", {verify_tls = false})
      assert.equal("hello world\n", r.body)
      assert.equal("2", r.http_version)
      assert.equal("1.1", corio.fetch(tls_base .. "/hello", {verify_tls = false, http_version = "1.1"}).http_version)
    end)

    it("inside a task, a FetchError is the task's error", function()
      local t = corio.spawn(corio.fetch, "http://no-such-host.invalid/")
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal("dns", err.kind)
    end)

    it("bad options name the option", function()
      local cases = {
        {{timeout = "soon"}, "timeout"},
        {{timeout = -1}, "timeout"},
        {{connect_timeout = 0}, "connect_timeout"},
        {{headers = "x"}, "headers"},
        {{body = 1}, "body"},
        {{form = "a=b"}, "form"},
        {{follow_redirects = "yes"}, "follow_redirects"},
        {{max_body = -5}, "max_body"},
        {{verify_tls = 1}, "verify_tls"},
        {{http_version = "3"}, "http_version"},
        {{proxy = 5}, "proxy"},
        {{method = "GE T"}, "method"},
        {{session = {}}, "session"},
        {{body = "a", json = {}}, "only one"},
        {{json = function() end}, "json"},
        {{tiemout = 1}, "unknown option 'tiemout'"},
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(corio.fetch, base .. "/hello", c[1])
        assert.is_false(ok, c[2])
        assert.matches(c[2], tostring(err), 1, true)
      end
      assert.has_error(function() corio.fetch() end)
      assert.has_error(function() corio.fetch(base, "opts") end)
    end)
  end)

  describe("cancellation", function()
    it("task:cancel() during a transfer raises CancelledError and drops it", function()
      local t = corio.spawn(corio.fetch, base .. "/delay/5000")
      local t0 = corio.time()
      while in_flight() == 0 and corio.time() - t0 < 2 do corio.sleep(0.01) end
      assert.equal(1, in_flight())
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal("CancelledError", err.name)
      assert.is_true(t:cancelled())
      corio.sleep(0.01)
      assert.equal(0, in_flight())
      assert.is_true(corio.time() - t0 < 4.5) -- before the 5 s delay ends
    end)

    it("wait_for cancels a slow fetch", function()
      local err = select(2, pcall(corio.wait_for, corio.spawn(corio.fetch, base .. "/delay/5000"), 0.1))
      assert.equal(corio.TimeoutError, err)
      corio.sleep(0.01)
      assert.equal(0, in_flight())
    end)
  end)

  describe("many at once", function()
    it("2,000 concurrent fetches from tasks", function()
      local n, ts = 2000, {}
      local t0 = corio.time()
      for i = 1, n do
        ts[i] = corio.spawn(function() return corio.fetch(base .. "/delay/100").status end)
      end
      local done = corio.wait(ts, {timeout = 30})
      assert.equal(n, #done)
      for i = 1, n do assert.equal(200, ts[i]:result()) end
      assert.is_true(corio.time() - t0 < 10, corio.time() - t0)
      assert.equal(0, in_flight())
    end)
  end)

  describe("sessions", function()
    it("max_connections queues the transfers", function()
      local s <close> = corio.session{max_connections = 2}
      local ts = {}
      local t0 = corio.time()
      for i = 1, 6 do ts[i] = corio.spawn(function() return s:get(base .. "/delay/200").status end) end
      corio.wait(ts, {timeout = 10})
      local dt = corio.time() - t0
      for i = 1, 6 do assert.equal(200, ts[i]:result()) end
      assert.is_true(dt >= 0.55, dt) -- 3 waves of 2
      assert.is_true(dt < 5, dt)
    end)

    it("the default session runs them all at once", function()
      local ts = {}
      local t0 = corio.time()
      for i = 1, 6 do ts[i] = corio.spawn(corio.get, base .. "/delay/1000") end
      corio.wait(ts, {timeout = 10})
      -- at once: 1 s; two waves would be 2 s, one after another 6 s
      assert.is_true(corio.time() - t0 < 1.9, corio.time() - t0)
    end)

    it("base_url, default headers and timeout apply; request options win", function()
      local s <close> = corio.session{base_url = base .. "/", headers = {["X-Test"] = "dflt"}, timeout = 0.2}
      assert.equal("dflt", s:get("/headers").body)
      assert.equal("mine", s:get("headers", {headers = {["x-test"] = "mine"}}).body)
      assert.equal("hello world\n", s:fetch(base .. "/hello").body) -- absolute
      assert.equal("timeout", fetch_error(s.get, s, "/delay/3000").kind)
      assert.equal(200, s:get("/delay/300", {timeout = 5}).status)
      assert.equal("x", s:post("/echo", {body = "x"}).body)
      assert.equal(200, corio.fetch("/hello", {session = s}).status)
    end)

    it("<close> closes it; a closed session is a clear error", function()
      local outer
      do
        local s <close> = corio.session{}
        outer = s
        assert.equal(200, s:get(base .. "/hello").status)
        assert.is_false(s:closed())
      end
      assert.is_true(outer:closed())
      local ok, err = pcall(outer.get, outer, base .. "/hello")
      assert.is_false(ok)
      assert.matches("closed", err)
      outer:close() -- twice is fine
    end)

    it("corio.stats().sockets counts idle keep-alive sockets, gone with their session", function()
      assert.equal(200, corio.get(base .. "/hello").status)
      local before = corio.stats().sockets
      assert.is_true(before >= 1, before) -- the default session's, idle
      local s = corio.session{}
      assert.equal(200, s:get(base .. "/hello").status)
      assert.equal(0, corio.stats().fetches)
      assert.equal(before + 1, corio.stats().sockets)
      s:close()
      assert.equal(before, corio.stats().sockets)
    end)

    it("closing a session cancels its transfers", function()
      local s = corio.session{}
      local t = corio.spawn(function() return s:get(base .. "/delay/5000") end)
      corio.sleep(0.05)
      s:close()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.equal("FetchError", err.name)
      assert.equal("cancelled", err.kind)
    end)

    it("rejects bad options", function()
      assert.has_error(function() corio.session{max_connections = -1} end)
      assert.has_error(function() corio.session{headers = {X = "a\nb"}} end)
      assert.has_error(function() corio.session{base_url = 1} end)
      local ok, err = pcall(corio.session, {maxconn = 1})
      assert.is_false(ok)
      assert.matches("unknown option 'maxconn'", err)
    end)

    it("is collected safely", function()
      for _ = 1, 20 do corio.session{} end
      collectgarbage()
      collectgarbage()
      assert.equal(200, corio.get(base .. "/hello").status)
    end)
  end)

  describe("blocking", function()
    it("get returns the same kind of response", function()
      local r = corio.blocking.get(base .. "/headers", {headers = {["X-Test"] = "b"}})
      assert.equal(200, r.status)
      assert.equal("b", r.body)
      assert.equal("yes", r.headers["X-Reply"])
      assert.equal(getmetatable(corio.get(base .. "/hello")), getmetatable(r))
      assert.equal("x", corio.blocking.post(base .. "/echo", {body = "x"}).body)
      assert.equal("dns", fetch_error(corio.blocking.get, "http://no-such-host.invalid/").kind)
    end)

    it("blocks the loop: tasks run one after another", function()
      local t0 = corio.time()
      local ts = {}
      for i = 1, 3 do ts[i] = corio.spawn(function() return corio.blocking.get(base .. "/delay/150").status end) end
      corio.wait(ts, {timeout = 10})
      assert.is_true(corio.time() - t0 >= 0.44, corio.time() - t0)
      for i = 1, 3 do assert.equal(200, ts[i]:result()) end
    end)

    it("works in plain lua5.4 with no loop running", function()
      local d = bin:match("^(.*)/[^/]*$") or "."
      local out, rc = sh(lua .. [[ -e 'package.cpath="]] .. d .. [[/?.so;"..package.cpath local corio=require "corio" local r=corio.blocking.get("]] .. base .. [[/hello") io.write(r.status, " ", r.body)']])
      assert.equal("200 hello world\n", out)
      assert.equal(0, rc)
    end)
  end)
end)
