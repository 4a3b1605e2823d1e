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
  -- (the server reads at most 80 KB of head: http-parser's limit)
  it("fetch sends 5,000 numeric header values (60 crashed), builds 10,000", function()
    ok(SERVER .. [[
for _, n in ipairs{60, 5000} do
  local h = {}
  for i = 1, n do h["X" .. i] = i end
  local r = corio.fetch(srv.url .. "/count", {headers = h})
  assert(r.status == 200, r.status)
  local got = tonumber(r.body:match("^(%d+)"))
  assert(got >= n and got < n + 10, r.body)
end
local h = {}
for i = 1, 10000 do h["X" .. i] = i end
assert(corio.fetch(srv.url .. "/count", {headers = h}).status == 431)
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
