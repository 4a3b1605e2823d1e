-- fetch's output and stream options: the body to a file as it arrives,
-- or r:chunks() as it arrives with a slow reader pausing the transfer;
-- against a private nginx on loopback (tests/support/nginx.sh, stopped by
-- PID in teardown) and corio.serve in this process.
local corio = require "corio"

local shell = require "tests.lua.support.shell"
local sh = shell.sh

local free_port = shell.free_port

local readfile = shell.readfile

local fetch_error = shell.fetch_error

-- Wait (bounded: 5 s) until pred() holds.
local function wait_until(pred)
  for _ = 1, 500 do
    if pred() then return true end
    corio.sleep(0.01)
  end
  return pred()
end

local function idle() return corio.stats().fetches == 0 end

describe("streamed bodies", function()
  local base, dir, port

  setup(function()
    port, dir = free_port(), os.tmpname()
    os.remove(dir)
    local out, rc = sh(("NGINX_OWNER=$PPID bash tests/support/nginx.sh start %d %s %d"):format(port, dir, free_port()))
    assert(rc == 0, out)
    base = "http://127.0.0.1:" .. port
  end)

  teardown(function()
    if dir then
      sh(("bash tests/support/nginx.sh stop %d %s"):format(port, dir))
      os.execute("rm -rf '" .. dir .. "'")
    end
  end)

  describe("output", function()
    it("writes the body to a file name: body nil, bytes its size", function()
      local name = dir .. "/out-1m"
      local r = corio.get(base .. "/bytes/1m", {output = name})
      assert.equal(200, r.status)
      assert.is_nil(r.body)
      assert.equal(1048576, r.bytes)
      assert.is_true(readfile(name) == ("c"):rep(1048576))
      -- chunked, of unknown length; a session's fetch too
      local s <close> = corio.session{}
      r = s:get(base .. "/chunked", {output = name})
      assert.equal(1000000, r.bytes)
      assert.is_true(readfile(name) == ("0123456789"):rep(100000))
      assert.is_true(idle())
    end)

    it("writes to an open file and leaves it open", function()
      local name = dir .. "/out-open"
      local f = assert(io.open(name, "wb"))
      f:write("head:")
      local r = corio.fetch(base .. "/bytes/1k", {output = f})
      assert.equal(1024, r.bytes)
      assert.is_nil(r.body)
      assert.equal("file", io.type(f)) -- still open
      f:write(":tail")
      f:close()
      assert.equal("head:" .. ("a"):rep(1024) .. ":tail", readfile(name))
    end)

    it("gives every response its bytes", function()
      local r = corio.get(base .. "/bytes/100k")
      assert.equal(102400, r.bytes)
      assert.equal(102400, #r.body)
      r = corio.get(base .. "/status/404")
      assert.equal(#r.body, r.bytes)
    end)

    it("an unwritable path is an io error naming it; nothing leaks", function()
      local err = fetch_error(corio.get, base .. "/hello",
                              {output = "/nonexistent-dir/x.bin"})
      assert.equal("io", err.kind)
      assert.matches("/nonexistent%-dir/x%.bin", err.message)
      assert.is_true(wait_until(idle)) -- the transfer started is cancelled
      local f = assert(io.open(dir .. "/closed", "wb"))
      f:close()
      err = fetch_error(corio.get, base .. "/hello", {output = f})
      assert.equal("io", err.kind)
      assert.is_true(wait_until(idle))
    end)

    it("a failed transfer removes the file it wrote; max_body applies", function()
      local name = dir .. "/out-too-large"
      local err = fetch_error(corio.get, base .. "/chunked",
                              {output = name, max_body = 500000})
      assert.equal("too_large", err.kind)
      assert.is_nil(readfile(name)) -- no half body left under the name
      err = fetch_error(corio.get, base .. "/bytes/1m",
                        {output = name, max_body = 1000}) -- known length
      assert.equal("too_large", err.kind)
      assert.is_nil(readfile(name))
      assert.is_true(idle())
    end)

    it("refuses bad values, both options, and the blocking calls", function()
      local ok, err = pcall(corio.get, base .. "/hello", {output = 42})
      assert.is_false(ok)
      assert.matches("option 'output' must be a file name or an open file", err)
      ok, err = pcall(corio.get, base .. "/hello", {output = "x", stream = true})
      assert.is_false(ok)
      assert.matches("only one of the options output and stream", err)
      ok, err = pcall(corio.blocking.get, base .. "/hello", {stream = true})
      assert.is_false(ok)
      assert.matches("need the loop", err)
    end)
  end)

  describe("stream", function()
    it("returns at the head; the chunks make the body", function()
      for _, c in ipairs({{"/bytes/1m", ("c"):rep(1048576)},
                          {"/chunked", ("0123456789"):rep(100000)},
                          {"/bytes/0", ""}}) do
        local r = corio.get(base .. c[1], {stream = true})
        assert.equal(200, r.status)
        assert.is_nil(r.body)
        assert.equal(0, r.bytes)
        local parts = {}
        for chunk in r:chunks() do
          assert.equal("string", type(chunk))
          parts[#parts + 1] = chunk
        end
        assert.is_true(table.concat(parts) == c[2], c[1])
        assert.equal(#c[2], r.bytes)
        assert.is_nil(r:chunks()(r)) -- the end stays the end
      end
      assert.is_true(idle())
    end)

    it("returns before the body ends (/slow waits 10 s after 'start')", function()
      local r = corio.get(base .. "/slow", {stream = true})
      assert.equal(200, r.status)
      local first = r:chunks()(r)
      assert.equal("start\n", first)
      r:close()
      assert.is_true(idle())
      assert.is_nil(r:chunks()(r)) -- closed: ends without an error
    end)

    it("text() reads the rest and keeps it as body; json() too", function()
      local r = corio.get(base .. "/bytes/100k", {stream = true})
      local t = r:text()
      assert.equal(102400, #t)
      assert.is_true(r.body == t)
      assert.equal(t, r:text())
      r = corio.post(base .. "/echo", {json = {a = 1}, stream = true})
      assert.same({a = 1}, r:json())
    end)

    it("a slow reader pauses the transfer: the memory stays bounded", function()
      collectgarbage()
      local kb0 = collectgarbage("count")
      local r = corio.get(base .. "/bytes/32m", {stream = true})
      local total, held, grew, n = 0, 0, 0, 0
      for chunk in r:chunks() do
        total = total + #chunk
        n = n + 1
        corio.sleep(0.002) -- a slow reader: the server is faster
        held = math.max(held, corio.stats().streamed)
        grew = math.max(grew, collectgarbage("count") - kb0)
        chunk = nil -- luacheck: ignore
        if n % 16 == 0 then collectgarbage() end
      end
      assert.equal(33554432, total)
      -- the runtime holds its buffer (256 KiB) and one read at most
      assert.is_true(held <= 320 * 1024, held)
      assert.is_true(held >= 128 * 1024, held) -- it did fill and pause
      -- Lua holds a chunk or two, not the body
      assert.is_true(grew < 8 * 1024, grew .. " KiB")
    end)

    it("max_body: too_large at the fetch, or from the iterator", function()
      local err = fetch_error(corio.get, base .. "/bytes/1m",
                              {stream = true, max_body = 1000})
      assert.equal("too_large", err.kind)
      local r = corio.get(base .. "/chunked", {stream = true, max_body = 500000})
      local got = 0
      err = fetch_error(function()
        for chunk in r:chunks() do got = got + #chunk end
      end)
      assert.equal("too_large", err.kind)
      assert.is_true(got <= 500000, got)
      assert.is_true(idle())
    end)

    it("a task cancelled while it iterates aborts the transfer", function()
      local got
      local t = corio.spawn(function()
        local r = corio.get(base .. "/slow", {stream = true})
        for chunk in r:chunks() do got = chunk end
      end)
      assert.is_true(wait_until(function() return got ~= nil end))
      assert.equal(1, corio.stats().fetches)
      t:cancel()
      assert.is_false(pcall(corio.await, t))
      assert.is_true(t:cancelled())
      assert.is_true(idle())
      assert.is_true(wait_until(function() return corio.stats().sockets == 0 end))
    end)

    it("a stream nobody holds is collected and its transfer aborted", function()
      do
        local r = corio.get(base .. "/bytes/32m", {stream = true})
        assert.equal(200, r.status)
      end
      assert.equal(1, corio.stats().fetches)
      collectgarbage()
      collectgarbage()
      assert.is_true(idle())
    end)
  end)

  describe("against corio.serve", function()
    local s, finished, sent

    setup(function()
      s = corio.serve{port = 0, handler = function(req)
        local i = 0
        finished, sent = nil, 0
        return {headers = {["Content-Type"] = "text/plain"}, body = function()
          i = i + 1
          if req.path == "/fail" and i == 3 then error("body failed") end
          local ok, err = pcall(corio.sleep, 0.01)
          if not ok then finished = "cancelled" error(err) end
          if i > 10000 then finished = "end" return nil end
          sent = sent + 1
          return ("x"):rep(1000)
        end}
      end}
    end)

    teardown(function() if s then s:close(0) end end)

    it("leaving the loop early aborts: the server sees it", function()
      local r = corio.get(s.url .. "/", {stream = true})
      local n = 0
      for _ in r:chunks() do
        n = n + 1
        if n == 3 then break end
      end
      assert.is_true(idle()) -- at once
      assert.is_true(wait_until(function() return s:stats().handlers == 0 end))
      assert.is_true(sent < 1000, sent)
      assert.is_true(finished ~= "end")
      -- an error in the loop body closes it too
      r = corio.get(s.url .. "/", {stream = true})
      local ok = pcall(function()
        for _ in r:chunks() do error("reader failed") end
      end)
      assert.is_false(ok)
      assert.is_true(idle())
      assert.is_true(wait_until(function() return s:stats().handlers == 0 end))
    end)

    it("an error mid-body raises from the iterator, after the bytes", function()
      local r = corio.get(s.url .. "/fail", {stream = true})
      assert.equal(200, r.status)
      local got = 0
      local err = fetch_error(function()
        for chunk in r:chunks() do got = got + #chunk end
      end)
      assert.equal(2000, got)
      assert.is_truthy(err.kind == "reset" or err.kind == "protocol", err.kind)
      assert.is_true(idle())
    end)
  end)
end)
