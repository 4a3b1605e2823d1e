-- What a careless script or a hostile peer can do to the binding (issue
-- 11): huge lists pushed on the Lua stack, finalizers called by hand.
-- Each case runs in a child corio process (bounded by `timeout`), since
-- the failure these guard against is a crash of the whole process.
local shell = require "tests.lua.support.shell"
local bin, sh, script = shell.bin, shell.sh, shell.script

-- Run `code` in a fresh corio process; return its output and status.
local function run(code)
  local s = script("local corio = require 'corio'\n" .. code)
  local out, rc = sh("timeout 120 " .. bin .. " " .. s)
  os.remove(s)
  return out, rc
end

-- Run `code`, which must print "ok" last and exit 0.
local function ok(code)
  local out, rc = run(code)
  assert.equal("ok\n", out:match("ok\n$") or out)
  assert.equal(0, rc)
  return out
end

-- a server on the loop that the child script starts first
local SERVER = [[
local srv = corio.serve{port = 0, max_header_bytes = 4e6, handler = function(req)
  if req.path == "/count" then
    local n = 0
    for _ in pairs(req.headers) do n = n + 1 end
    local q = 0
    for _ in pairs(req.query) do q = q + 1 end
    return {body = n .. " " .. q .. " " .. #req.body}
  elseif req.path == "/many" then
    local h = {}
    for i = 1, tonumber(req.query.n) do h["X-H" .. i] = i end
    return {headers = h, body = "many"}
  end
  return "hi"
end}
]]

describe("long lists on the Lua stack", function()
  it("fetch sends 5,000 and 10,000 numeric header values (60 crashed)", function()
    ok(SERVER .. [[
for _, n in ipairs{60, 5000, 10000} do
  local h = {}
  for i = 1, n do h["X" .. i] = i end
  local r = corio.fetch(srv.url .. "/count", {headers = h})
  assert(r.status == 200, r.status)
  local got = tonumber(r.body:match("^(%d+)"))
  assert(got >= n and got < n + 10, r.body)
end
srv:close()
print("ok")
]])
  end)

  it("a session with 4,000 numeric default headers, and a form of 10,000 fields", function()
    ok(SERVER .. [[
local h, form = {}, {}
for i = 1, 10000 do form["f" .. i] = i end
for i = 1, 4000 do h["X" .. i] = i end
local s = corio.session{headers = h}
local r = s:post(srv.url .. "/count", {form = form, headers = {Y = 1, Z = 2}})
local nh, nq, blen = r.body:match("^(%d+) (%d+) (%d+)$")
assert(tonumber(nh) >= 4002, r.body)
assert(tonumber(blen) > 10000 * 6, r.body)
s:close()
srv:close()
print("ok")
]])
  end)

  it("a handler reads 5,000 query parameters and answers 2,000 numeric headers", function()
    ok(SERVER .. [[
local q = {}
for i = 1, 5000 do q[i] = "k" .. i .. "=" .. i end
local r = corio.fetch(srv.url .. "/count?" .. table.concat(q, "&"))
local nh, nq = r.body:match("^(%d+) (%d+)")
assert(tonumber(nq) == 5000, r.body)
r = corio.fetch(srv.url .. "/many?n=2000")
assert(r.status == 200 and r.body == "many", r.status)
local n = 0
for k, v in pairs(r.headers) do n = n + 1 end
assert(n >= 2000 and r.headers["X-H1999"] == "1999", n)
srv:close()
print("ok")
]])
  end)

  it("spawn, run, create_task and corio.async take 10,000 arguments", function()
    ok([[
local args = {}
for i = 1, 10000 do args[i] = i end
local function count(...) corio.sleep(0) return select("#", ...), (select(10000, ...)) end
local t = corio.spawn(count, table.unpack(args))
local n, last = t:await()
assert(n == 10000 and last == 10000, n)
n = corio.run(count, table.unpack(args))
assert(n == 10000, n)
n = corio.await(corio.async(count)(table.unpack(args)))
assert(n == 10000, n)
n = corio.await(corio.create_task(corio.async(count)(table.unpack(args))))
assert(n == 10000, n)
print("ok")
]])
  end)

  it("a task, a future and await hand back 10,000 results", function()
    ok([[
local args = {}
for i = 1, 10000 do args[i] = i end
local t = corio.spawn(function() corio.sleep(0) return table.unpack(args) end)
assert(select("#", t:await()) == 10000)
assert(select(10000, t:result()) == 10000)
t = corio.spawn(function() return table.unpack(args) end) -- ends without waiting
assert(select("#", corio.await(t)) == 10000)
local f = corio.future()
corio.spawn(function() f:set_result(table.unpack(args)) end)
assert(select("#", f:await()) == 10000)
assert(select("#", corio.wait_for(corio.spawn(function() return table.unpack(args) end), 60)) == 10000)
print("ok")
]])
  end)

  it("wait, gather and as_completed take 10,000 tasks, as a list or as arguments", function()
    ok([[
local ts = {}
for i = 1, 10000 do ts[i] = corio.spawn(function() corio.sleep(0) return i end) end
local done, pending = corio.wait(ts)
assert(#done == 10000 and #pending == 0)
local r = corio.gather(ts)
assert(r.n == 10000 and r[10000] == 10000)
r = corio.gather(table.unpack(ts))
assert(r.n == 10000 and r[10000] == 10000)
local args = {table.unpack(ts)}
args[#args + 1] = {return_exceptions = true}
r = corio.gather(table.unpack(args))
assert(r.n == 10000)
local n = 0
for t in corio.as_completed(ts) do n = n + 1 end
assert(n == 10000)
print("ok")
]])
  end)

  it("to_thread takes 10,000 arguments and returns 10,000 results", function()
    ok([[
local args = {}
for i = 1, 10000 do args[i] = i end
local n = corio.to_thread(function(...) return select("#", ...) end, table.unpack(args))
assert(n == 10000, n)
local r = {corio.to_thread(function(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return table.unpack(t)
end, 10000)}
assert(#r == 10000 and r[10000] == 10000, #r)
r = corio.threads.map(function(x) return x * 2 end, args, {threads = 2})
assert(r.n == 10000 and r[10000] == 20000)
print("ok")
]])
  end)
end)

-- Every userdata type of the binding, in a child: name -> maker.
local FIN = [[
local function fin(o) return debug.getmetatable(o).__gc end
-- call o's finalizer twice, then on values of other types
local function twice(o)
  local g = fin(o)
  if g == nil then return end
  g(o)
  g(o)
  for _, bad in ipairs{{}, 1, "x", io.stdout, corio.future(), print} do pcall(g, bad) end
  pcall(g)
end
-- a task that must not notice any of this
local bystander = corio.spawn(function() corio.sleep(0.05) return "alive" end)
local function check_bystander()
  assert(bystander:await() == "alive")
  assert(not bystander:cancelled())
end
]]

describe("finalizers", function()
  it("are not methods: obj.__gc is nil (or raises), methods and type names remain", function()
    local corio = require "corio"
    local srv <close> = corio.serve{port = 0, handler = function() return "hi" end}
    local s <close> = corio.session()
    local f = corio.future()
    local t = corio.spawn(function() corio.sleep(0.01) return 1 end)
    local r = corio.fetch(srv.url)
    for name, o in pairs{session = s, server = srv, response = r,
                         headers = r.headers} do
      assert.is_nil(o.__gc, name)
      assert.is_nil(o.__index, name)
      assert.is_nil(o.__name, name)
    end
    for _, o in ipairs{f, t} do -- a field no task has raises
      assert.has_error(function() return o.__gc end)
      assert.has_error(function() return o.__index end)
    end
    assert.has_error(function() return t:__gc() end)
    local g = corio.future()
    assert.has_error(function() return g.__gc() end)
    g:cancel() -- no task left behind for the specs that count them
    -- objects that are not indexable stay so
    local c = corio.async(function() end)()
    local _, st = corio.as_completed({t})
    assert.is_false(pcall(function() return c.__gc end))
    assert.is_false(pcall(function() return st.__gc end))
    corio.await(c)
    -- methods, type names in messages and tostring
    f:set_result(7)
    assert.equal(7, f:await())
    assert.equal(1, t:await())
    assert.is_false(s:closed())
    assert.equal("hi", r:text())
    assert.equal(0, srv:stats().inflight)
    assert.matches("^<Future finished", tostring(f))
    assert.matches("^<Task finished", tostring(t))
    assert.matches("corio%.Task expected", select(2, pcall(t.done, {})))
    assert.matches("corio%.Session expected", select(2, pcall(s.closed, {})))
    assert.equal("corio.Task", debug.getmetatable(t).__name)
  end)

  it("of tasks and futures, called by a script in any state, twice, end nothing", function()
    ok(FIN .. [[
local pending_f, done_f, failed_f, cancelled_f = corio.future(), corio.future(), corio.future(), corio.future()
done_f:set_result(1)
failed_f:set_exception("boom")
cancelled_f:cancel()
local sleeping = corio.spawn(function() corio.sleep(0.02) return "slept" end)
local finished = corio.spawn(function() return "done" end)
local failed = corio.spawn(function() error("task failed") end)
local cancelled = corio.spawn(function() corio.sleep(10) end)
local running = corio.spawn(function()
  twice(corio.current_task())
  corio.sleep(0.01)
  return "ran"
end)
corio.sleep(0)
cancelled:cancel()
corio.sleep(0)
for _, o in ipairs{pending_f, done_f, failed_f, cancelled_f, sleeping, finished, failed, cancelled, running} do
  twice(o)
end
assert(sleeping:await() == "slept" and running:await() == "ran")
assert(finished:result() == "done" and not pending_f:done())
pending_f:set_result(2)
assert(pending_f:await() == 2)
assert(not pcall(failed.result, failed) and not pcall(failed_f.result, failed_f))
assert(cancelled:cancelled() and cancelled_f:cancelled())
check_bystander()
print("ok")
]])
  end)

  it("of coroutine objects warn once at most, and never when called by a script", function()
    local out = ok(FIN .. [[
local function never() end
local c = corio.async(never)()
twice(c)
local s = corio.async(function() return "s" end)()
twice(s)
assert(corio.await(s) == "s")
twice(s)
c = nil
collectgarbage()
collectgarbage()
check_bystander()
print("ok")
]])
    local _, n = out:gsub("never awaited", "")
    assert.equal(1, n)
  end)

  it("of sessions and servers, called by a script, leave them usable", function()
    ok(FIN .. [[
local srv = corio.serve{port = 0, handler = function(req) corio.sleep(0.01) return "hi" end}
local s = corio.session()
local waiter = corio.spawn(function() return srv:wait() end)
local inflight = corio.spawn(function() return corio.fetch(srv.url):text() end)
corio.sleep(0.005)
twice(srv)
twice(s) -- closes the session, as close() does
assert(s:closed())
twice(s)
assert(inflight:await() == "hi")
assert(corio.fetch(srv.url):text() == "hi")
assert(not srv.closed and srv:stats().requests >= 2)
srv:close()
assert(srv.closed)
waiter:await()
twice(srv)
check_bystander()
print("ok")
]])
  end)

  it("of as_completed, timeout and the runtime, called by a script, stop nothing", function()
    ok(FIN .. [[
local ts = {}
for i = 1, 3 do ts[i] = corio.spawn(function() corio.sleep(0.01 * i) return i end) end
local it, st = corio.as_completed(ts)
local iterating = corio.spawn(function()
  local got = {}
  for t in it, st do got[#got + 1] = t:result() end
  return table.concat(got, ",")
end)
corio.sleep(0.002)
twice(st) -- while the iteration waits on it
local timed = corio.spawn(function()
  return corio.timeout(0.02, function()
    for level = 1, 10 do
      if not debug.getinfo(level, "f") then break end
      for i = 1, 10 do
        local _, v = debug.getlocal(level, i)
        if type(v) == "userdata" and debug.getmetatable(v).__name == "corio.Deadline" then twice(v) end
      end
    end
    corio.sleep(5)
  end)
end)
twice(debug.getregistry()["corio.State"])
assert(iterating:await() == "1,2,3")
local ok, err = pcall(timed.await, timed)
assert(not ok and err.kind == "timeout", tostring(err))
assert(corio.sleep(0.001, "still") == "still")
check_bystander()
print("ok")
]])
  end)

  it("run once at exit, whatever state lua_close finds objects in", function()
    local out, rc = run(FIN .. [[
local srv = corio.serve{port = 0, handler = function() corio.sleep(10) end}
local s = corio.session()
corio.spawn(function() return corio.fetch(srv.url) end)
corio.spawn(function() return s:get(srv.url) end)
local ts = {corio.spawn(corio.sleep, 10)}
corio.spawn(function() for t in corio.as_completed(ts) do end end)
corio.spawn(function() corio.timeout(5, corio.sleep, 10) end)
corio.spawn(function() error("never retrieved") end)
local f = corio.future()
local closed = corio.session()
closed:close()
twice(closed)
local c = corio.async(function() end)()
corio.sleep(0.02)
print("ok")
os.exit(0, true) -- lua_close with all of it pending
]])
    assert.equal(0, rc)
    assert.matches("^ok\n", out)
    local _, n = out:gsub("Task exception was never retrieved", "")
    assert.equal(1, n)
    assert.not_matches("never awaited", out) -- lua_close says nothing
  end)
end)
