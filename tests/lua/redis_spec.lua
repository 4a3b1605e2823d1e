-- corio.redis against a real redis-server on loopback, started and
-- stopped (by PID) by this spec; the tests that kill a server start their
-- own.
local corio = require "corio"
local rs = require "tests.lua.support.redis"
local shell = require "tests.lua.support.shell"

local function kind_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  assert.is_table(err, tostring(err))
  return err.kind, err
end

describe("corio.redis", function()
  local server

  setup(function() server = rs.start() end)
  teardown(function() rs.stop(server) end)

  it("returns replies as Lua values", function()
    local r <close> = corio.redis.connect(server.url, {timeout = 5})
    r:call("DEL", "s:k", "s:n", "s:bin")
    assert.equal("OK", r:call("SET", "s:k", "v"))
    assert.equal("v", r:call("GET", "s:k"))
    assert.is_nil(r:call("GET", "s:missing"))
    assert.equal(7, r:call("INCRBY", "s:n", 7))
    assert.equal(math.type(r:call("INCR", "s:n")), "integer")
    assert.equal("OK", r:call("SET", "s:bin", "a\0b\r\n"))
    assert.equal("a\0b\r\n", r:call("GET", "s:bin"))
    assert.equal("1.5", r:call("ECHO", 1.5))
    assert.equal("PONG", r:call("PING"))
  end)

  it("nests arrays, keeping nils inside them as corio.redis.null", function()
    local r <close> = corio.redis.connect(server.url)
    local t = r:call("EVAL", "return {1, {2, 'x', {}}, 'y'}", 0)
    assert.same({1, {2, "x", {}}, "y"}, t)
    r:call("DEL", "s:h")
    r:call("HSET", "s:h", "a", "1")
    local got = r:call("HMGET", "s:h", "a", "b", "c")
    assert.equal(3, #got)
    assert.equal("1", got[1])
    assert.equal(corio.redis.null, got[2])
    assert.equal(corio.json.null, got[3]) -- the same light userdata
    assert.same({}, r:call("LRANGE", "s:empty", 0, -1))
  end)

  it("raises error replies with kind 'redis' and the error's code", function()
    local r <close> = corio.redis.connect(server.url)
    local kind, err = kind_of(r.call, r, "NOSUCHCOMMAND", "x")
    assert.equal("redis", kind)
    assert.equal("ERR", err.code)
    assert.matches("unknown command", err.message)
    assert.equal(corio.redis.RedisError, err)
    r:call("SET", "s:str", "x")
    kind, err = kind_of(r.call, r, "LPUSH", "s:str", "y")
    assert.equal("WRONGTYPE", err.code)
    -- the client goes on
    assert.equal("x", r:call("GET", "s:str"))
    -- an error inside an array (EXEC) is a value, not raised
    r:call("MULTI")
    r:call("SET", "s:m", "1")
    r:call("LPUSH", "s:m", "2")
    local res = r:call("EXEC")
    assert.equal("OK", res[1])
    assert.equal("redis", res[2].kind)
    assert.equal("WRONGTYPE", res[2].code)
  end)

  it("pipelines the calls of 100 tasks on one connection", function()
    local r <close> = corio.redis.connect(server.url)
    r:call("DEL", "s:cnt")
    local before = r:stats()
    local tasks = {}
    for i = 1, 100 do
      tasks[i] = corio.spawn(function() return r:call("INCR", "s:cnt") end)
    end
    local got = corio.gather(tasks)
    table.sort(got)
    for i = 1, 100 do assert.equal(i, got[i]) end
    local after = r:stats()
    assert.equal(1, after.connects)
    assert.equal(100, after.commands - before.commands)
    -- pipelined: far fewer writes than commands
    assert.is_true(after.writes - before.writes < 50, after.writes - before.writes)
    assert.equal(0, after.pending)
  end)

  it("drops the reply of a cancelled call and stays in sync", function()
    local r <close> = corio.redis.connect(server.url)
    r:call("SET", "s:sync", "mine")
    local t = corio.spawn(function() return r:call("BLPOP", "s:never", 2) end)
    corio.sleep(0.05)
    t:cancel()
    local ok, err = pcall(corio.wait_for, t, 5)
    assert.is_false(ok)
    assert.equal(corio.CancelledError, err)
    -- behind the BLPOP, whose nil reply comes first and is dropped
    assert.equal("mine", r:call("GET", "s:sync"))
    local ok2, err2 = pcall(corio.timeout, 0.05, function()
      return r:call("BLPOP", "s:never", 0.3)
    end)
    assert.is_false(ok2)
    assert.equal(corio.TimeoutError, err2)
    assert.equal("after", r:call("ECHO", "after"))
  end)

  it("fails calls on a closed client with kind 'closed'", function()
    local r = corio.redis.connect(server.url)
    local t = corio.spawn(function() return r:call("BLPOP", "s:never", 5) end)
    corio.sleep(0.05)
    r:close()
    assert.is_true(r:closed())
    local ok, err = pcall(corio.wait_for, t, 5)
    assert.is_false(ok)
    assert.equal("closed", err.kind)
    assert.equal("closed", (kind_of(r.call, r, "PING")))
    do
      local r2 <close> = corio.redis.connect(server.url)
      assert.equal("PONG", r2:call("PING"))
    end
  end)

  it("refuses bad URLs and bad arguments at once", function()
    for _, url in ipairs{"http://127.0.0.1:6379", "redis://", "not a url",
        "redis://127.0.0.1:6379/x", "redis://127.0.0.1:99999"} do
      local kind, err = kind_of(corio.redis.connect, url)
      assert.equal("invalid_url", kind, url)
      assert.matches("bad URL", err.message)
    end
    assert.has_error(function() corio.redis.connect(server.url, {tiemout = 1}) end,
      "corio.redis.connect: unknown option 'tiemout'")
    local r <close> = corio.redis.connect(server.url)
    assert.has_error(function() r:call("SET", "k", {}) end,
      "bad argument #3 to 'redis:call' (string or number expected, got table)")
    assert.has_error(function() r:call() end, "redis:call: a command is needed")
  end)

  it("fails to connect with kind 'connect' when nothing listens", function()
    local port = rs.free_port()
    local kind, err = kind_of(corio.redis.connect, "redis://127.0.0.1:" .. port)
    assert.equal("connect", kind)
    assert.matches("127.0.0.1:" .. port .. ": Connection refused", err.message, 1, true)
  end)

  it("looks a name up off the loop; one that does not resolve raises kind 'dns'", function()
    -- in a child with tests/c/slow_dns.c preloaded: slow.corio.test
    -- answers 127.0.0.1 after 1 s, names under .invalid fail at once
    -- (no DNS server is asked); the sanitized executable wants its
    -- runtime first, which a preload is not
    local shim = shell.bin:gsub("[^/]*$", "") .. "tests/libcorio_slow_dns.so"
    local asan = os.getenv("ASAN_OPTIONS")
    asan = (asan and asan ~= "" and asan .. ":" or "") .. "verify_asan_link_order=0"
    local s = shell.script(([[
      local last, gap = corio.time(), 0
      local ticker = corio.spawn(function()
        while true do
          corio.sleep(0.05)
          local now = corio.time()
          gap, last = math.max(gap, now - last), now
        end
      end)
      local t0 = corio.time()
      local r = corio.redis.connect("redis://slow.corio.test:%d", {timeout = 5})
      local pong = r:call("PING")
      local secs = corio.time() - t0
      r:close()
      local ok, e = pcall(corio.redis.connect, "redis://nonexistent.invalid:6379")
      ticker:cancel()
      print(pong, ("%%.2f"):format(secs), ("%%.2f"):format(gap), ok, e.kind, e.message)
    ]]):format(server.port))
    local out, rc = shell.sh(("timeout -s KILL 20 env LD_PRELOAD=%s ASAN_OPTIONS=%s %s %s")
      :format(shim, asan, shell.bin, s))
    os.remove(s)
    assert.equal(0, rc, out)
    local pong, secs, gap, ok, kind, msg =
      out:match("^(%a+)\t([%d.]+)\t([%d.]+)\t(%a+)\t(%a+)\t([^\n]*)\n$")
    assert.equal("PONG", pong, out)
    assert.is_true(tonumber(secs) >= 0.9, out) -- the lookup took its second
    assert.is_true(tonumber(gap) < 0.3, out)   -- and the loop went on
    assert.equal("false", ok, out)
    assert.equal("dns", kind, out)
    assert.matches("nonexistent.invalid:6379: ", msg, 1, true)
  end)

  it("says clearly when the server is not Redis", function()
    local http = corio.serve{port = 0, handler = function() return "hello" end}
    local kind, err = kind_of(corio.redis.connect, "redis://127.0.0.1:" .. http.port)
    http:close(0)
    assert.equal("protocol", kind)
    assert.matches("not a Redis server?", err.message, 1, true)
  end)

  it("fails calls in flight when the server dies; the next call reconnects", function()
    local own = rs.start()
    finally(function() rs.stop(own) end)
    local r <close> = corio.redis.connect(own.url)
    assert.equal("PONG", r:call("PING"))
    local waiting = {}
    for i = 1, 3 do
      waiting[i] = corio.spawn(function() return r:call("BLPOP", "s:never", 10) end)
    end
    corio.sleep(0.1)
    rs.stop(own, "KILL")
    for i = 1, 3 do
      local ok, err = pcall(corio.wait_for, waiting[i], 5)
      assert.is_false(ok)
      assert.equal("reset", err.kind)
    end
    -- down: the next call tries again and fails to connect
    assert.equal("connect", (kind_of(r.call, r, "PING")))
    own = rs.start{port = own.port}
    assert.equal("back", r:call("ECHO", "back"))
    assert.equal(3, r:stats().connects)
  end)
end)
