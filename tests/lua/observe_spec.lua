-- Seeing what tasks do: all_tasks, dump_tasks and SIGQUIT, debug mode,
-- trace files and the timeline chart.
local corio = require "corio"

local shell = require "tests.lua.support.shell"
local bin, sh, script = shell.bin, shell.sh, shell.script

local function slurp(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- a server whose /slow answers after 5 s (the tasks are cancelled first)
local srv = corio.serve{port = 0, handler = function(req)
  if req.path == "/slow" then corio.sleep(5) end
  return "hello"
end}
local base = "http://127.0.0.1:" .. srv.port

describe("task dumps", function()
  it("all_tasks lists the pending tasks, oldest first", function()
    corio.run(function()
      local a = corio.spawn(function() corio.sleep(1) end)
      local b = corio.spawn(function() corio.sleep(1) end)
      corio.sleep(0)
      local all = corio.all_tasks()
      local ia, ib
      for i, t in ipairs(all) do
        if t == a then ia = i end
        if t == b then ib = i end
      end
      assert.truthy(ia and ib and ia < ib)
      assert.truthy(corio.current_task() ~= nil)
      a:cancel()
      b:cancel()
    end)
  end)

  it("lists three pending tasks with their reasons, sites and tracebacks", function()
    local name = os.tmpname()
    local n
    corio.run(function()
      local fut = corio.future()
      local sleeper = corio.spawn(function() corio.sleep(5) end)
      sleeper:set_name("sleeper")
      local fetcher = corio.spawn(function() return corio.get(base .. "/slow") end)
      fetcher:set_name("fetcher")
      local waiter = corio.spawn(function() return corio.await(fut) end)
      waiter:set_name("waiter")
      local q = corio.queue()
      local getter = corio.spawn(function() return q:get() end)
      getter:set_name("getter")
      corio.sleep(0.2)
      n = corio.dump_tasks(name)
      for _, t in ipairs{sleeper, fetcher, waiter, getter} do t:cancel() end
      fut:cancel()
    end)
    local text = slurp(name)
    os.remove(name)
    assert.truthy(n >= 4)
    assert.matches("Task 'sleeper' spawned at [^\n]*observe_spec.lua:%d+, waiting on sleep 5 for 0%.%d+ s", text)
    assert.matches("Task 'fetcher' spawned at [^\n]*observe_spec.lua:%d+, waiting on fetch GET " ..
                   base:gsub("%p", "%%%0") .. "/slow for", text)
    assert.matches("Task 'waiter' spawned at [^\n]*observe_spec.lua:%d+, waiting on future for", text)
    assert.matches("Task 'getter'[^\n]*waiting on queue get for", text)
    assert.matches("stack traceback:\n\t%[C%]: in function 'corio.sleep'", text)
    assert.matches("in function 'corio.get'", text)
  end)

  it("shows a server's handler task by its request line, spawned at the corio.serve call", function()
    local name = os.tmpname()
    local line, labels
    corio.run(function()
      line = debug.getinfo(1, "l").currentline + 1
      local s <close> = corio.serve{port = 0, handler = function()
        corio.sleep(5)
      end}
      local client = corio.spawn(function() return corio.get(s.url .. "/nap?x=1") end)
      for _ = 1, 500 do -- until the handler sleeps (5 s at most)
        if s:stats().handlers == 1 then break end
        corio.sleep(0.01)
      end
      corio.sleep(0.05)
      corio.dump_tasks(name)
      labels = {}
      for _, t in ipairs(corio.all_tasks()) do labels[#labels + 1] = t:get_name() end
      client:cancel()
      s:close(0)
    end)
    local text = slurp(name)
    os.remove(name)
    assert.matches("Task 'GET /nap%?x=1' spawned at [^\n]*observe_spec.lua:" .. line ..
                   ", waiting on sleep 5 for", text)
    assert.falsy(text:match("spawned at %?"), text)
    assert.truthy(table.concat(labels, "\n"):match("GET /nap%?x=1"), table.concat(labels, ", "))
  end)

  it("says '?' for a task spawned where no Lua line says where", function()
    local name = os.tmpname()
    corio.run(function()
      -- three C calls between spawn and this function: no Lua frame found
      pcall(pcall, pcall, corio.spawn, function() corio.sleep(5) end)
      local t
      for _, x in ipairs(corio.all_tasks()) do
        if x ~= corio.current_task() then t = x end
      end
      t:set_name("sited nowhere")
      corio.sleep(0.01)
      corio.dump_tasks(name)
      t:cancel()
    end)
    local text = slurp(name)
    os.remove(name)
    assert.matches("Task 'sited nowhere' spawned at %?, waiting on sleep 5 for", text)
  end)

  it("SIGQUIT prints the dump, and the script goes on", function()
    local ready = os.tmpname()
    os.remove(ready)
    local s = script(([[
      corio.spawn(function() corio.sleep(1) end):set_name("napper")
      local f = io.open(%q, "w") f:write("ready") f:close()
      corio.sleep(1)
      print("went on")
    ]]):format(ready))
    -- the signal goes once the script wrote `ready` (at most 10 s of
    -- polling); a guard kills corio after 20 s
    local out, rc = sh("(" .. bin .. " " .. s .. " & pid=$!; i=0; " ..
      "while [ ! -s " .. ready .. " ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; " ..
      "kill -QUIT $pid; (sleep 20; kill -KILL $pid) >/dev/null 2>&1 & guard=$!; " ..
      "wait $pid; rc=$?; kill $guard 2>/dev/null; exit $rc)")
    os.remove(s)
    os.remove(ready)
    assert.equal(0, rc)
    assert.matches("corio: %d+ pending tasks?\n", out)
    assert.matches("Task 'napper' spawned at [^\n]*:1, waiting on sleep 1 for", out)
    assert.matches("went on\n$", out)
  end)
end)

describe("task dumps", function()
  it("dump_tasks names itself when its file is wrong", function()
    local f = assert(io.open(os.tmpname(), "w"))
    f:close()
    local ok, err = pcall(corio.dump_tasks, f)
    assert.is_false(ok)
    assert.equal("corio.dump_tasks: the file is closed", err)
    ok, err = pcall(corio.dump_tasks, 5)
    assert.equal("corio.dump_tasks: expected a path or an open file (got number)", err)
  end)
end)

describe("debug mode", function()
  it("reports a slow task with the line it yielded at", function()
    local s = script([[
corio.set_debug{slow_callback_duration = 0.05}
corio.spawn(function()
  local t = os.clock()
  while os.clock() - t < 0.2 do end
  corio.sleep(0.01) -- line 5
end):set_name("busy")
]])
    local out, rc = sh(bin .. " " .. s)
    assert.equal(0, rc)
    local file = s:match("[^/]+$")
    assert.matches("task 'busy' %(spawned at [^\n]*" .. file:gsub("%p", "%%%0") ..
                   ":2%) ran %d+%.%d+ s without a wait; it yielded at [^\n]*:5\n", out)
    os.remove(s)
  end)

  it("is on with CORIO_DEBUG=1 and reports sessions left open", function()
    local out, rc = sh("CORIO_DEBUG=1 " .. bin ..
      [[ -e 'print(corio.get_debug()) local s = corio.session()']])
    assert.equal(0, rc)
    assert.matches("^true\n", out)
    assert.matches("session made at %(command line%):1 was left open", out)
    out = sh(bin .. [[ -e 'print(corio.get_debug()) local s = corio.session()']])
    assert.equal("false\n", out)
  end)
end)

-- a known script: 3 tasks, one sleeps, two fetch from its own server
local known = [[
local srv = corio.serve{port = 0, handler = function() return "hello" end}
local url = "http://127.0.0.1:" .. srv.port .. "/x"
local a = corio.spawn(function() corio.sleep(0.02) end)
a:set_name("sleeper")
local b = corio.spawn(function() return corio.get(url).status end)
local c = corio.spawn(function() return corio.get(url).status end)
corio.wait{a, b, c}
srv:close()
]]

local function by_tid(events)
  local names, slices = {}, {}
  for _, e in ipairs(events) do
    if e.ph == "M" and e.name == "thread_name" then names[e.tid] = e.args.name end
    if e.ph == "X" then
      slices[e.tid] = slices[e.tid] or {}
      table.insert(slices[e.tid], e)
    end
  end
  return names, slices
end

local function find(list, pred)
  for _, e in ipairs(list or {}) do if pred(e) then return e end end
end

describe("debug mode turned on by a task", function()
  it("reports no run that began before it was on", function()
    local s = script([[
      local t = corio.spawn(function()
        local t0 = corio.time()
        while corio.time() - t0 < 0.02 do end
        corio.set_debug(true) -- this run began with debug mode off
        corio.sleep(0)
      end)
      t:await()
      corio.set_debug(false)
    ]])
    local out, rc = sh(bin .. " " .. s)
    os.remove(s)
    assert.equal(0, rc, out)
    assert.falsy(out:match("ran [%d.]+ s without a wait"), out)
  end)
end)

describe("trace files", function()
  it("--trace writes Chrome JSON with tracks, slices, reasons and fetch phases", function()
    local s = script(known)
    local trace = os.tmpname()
    local out, rc = sh(bin .. " --trace " .. trace .. " " .. s)
    assert.equal("", out)
    assert.equal(0, rc)
    local events = corio.json.decode(slurp(trace))
    os.remove(s)
    os.remove(trace)
    local names, slices = by_tid(events)
    assert.equal("main", names[0])
    assert.equal("sleeper", names[1])
    assert.equal("Task-2", names[2])
    assert.equal("Task-3", names[3])
    assert.truthy(find(slices[1], function(e) return e.cat == "task" and e.name == "run" end))
    assert.truthy(find(slices[1], function(e) return e.cat == "wait" and e.name == "sleep 0.02" end))
    assert.truthy(find(slices[0], function(e) return e.cat == "wait" and e.name == "wait 3 tasks" end))
    for tid = 2, 3 do
      local w = find(slices[tid], function(e)
        return e.cat == "wait" and e.name:match("^fetch GET http://127%.0%.0%.1:%d+/x$") end)
      assert.truthy(w)
      local f = find(slices[tid], function(e) return e.cat == "fetch" and e.name == "fetch" end)
      assert.truthy(f)
      assert.equal(200, f.args.status)
      assert.equal(5, f.args.bytes)
      assert.matches("/x$", f.args.url)
      assert.equal("boolean", type(f.args.reused))
      -- the span lies in the wait, and its phases in the span
      assert.truthy(f.ts >= w.ts and f.ts + f.dur <= w.ts + w.dur)
      for _, p in ipairs{"ttfb", "body"} do
        local ph = find(slices[tid], function(e) return e.cat == "fetch" and e.name == p end)
        if ph then assert.truthy(ph.ts >= f.ts and ph.ts + ph.dur <= f.ts + f.dur) end
      end
    end
    -- a new connection shows its phases
    assert.truthy(find(slices[2], function(e) return e.name == "connect" end) or
                  find(slices[3], function(e) return e.name == "connect" end))
    assert.truthy(find(events, function(e) return e.ph == "C" and e.args.tasks end))
  end)

  it("is complete when the script ends with os.exit", function()
    local trace = os.tmpname()
    local s = script("for i = 1, 2000 do corio.spawn(function() corio.sleep(0) end) end " ..
                     "corio.sleep(0.01) os.exit(0)")
    local out, rc = sh(bin .. " --trace " .. trace .. " " .. s)
    assert.equal(0, rc)
    local events = corio.json.decode(slurp(trace))
    os.remove(s)
    os.remove(trace)
    assert.equal("trace_end", events[#events].name)
    assert.truthy(find(events, function(e) return e.tid == 2000 end))
  end)

  it("corio.trace_start and trace_stop trace part of a program", function()
    local trace = os.tmpname()
    corio.run(function()
      corio.trace_start(trace)
      local t = corio.spawn(function()
        local sem = corio.semaphore(1)
        local g = sem:acquire()
        local u = corio.spawn(function() sem:acquire():release() end)
        corio.sleep(0.01)
        g:release()
        corio.await(u)
      end)
      corio.await(t)
      corio.trace_stop()
    end)
    local events = corio.json.decode(slurp(trace))
    os.remove(trace)
    assert.truthy(find(events, function(e) return e.cat == "wait" and e.name == "semaphore" end))
    assert.truthy(find(events, function(e) return e.cat == "wait" and e.name == "sleep 0.01" end))
    assert.truthy(find(events, function(e) return e.cat == "wait" and e.name:match("^await Task%-%d+$") end))
  end)
end)

describe("trace of a server", function()
  it("has a slice per request with method, path and status", function()
    local trace = os.tmpname()
    local line
    corio.run(function()
      corio.trace_start(trace)
      line = debug.getinfo(1, "l").currentline + 1
      local srv <close> = corio.serve{port = 0, handler = function(req)
        if req.path == "/slow" then corio.sleep(0.02) end
        if req.path == "/boom" then error("boom", 0) end
        return "ok"
      end}
      corio.get(srv.url .. "/slow")
      corio.get(srv.url .. "/boom")
      corio.trace_stop()
    end)
    local events = corio.json.decode(slurp(trace))
    os.remove(trace)
    local slow = find(events, function(e) return e.cat == "server" and e.name == "GET /slow" end)
    assert.truthy(slow)
    assert.same({method = "GET", path = "/slow", status = 200}, slow.args)
    assert.is_true(slow.dur >= 15000) -- the handler slept 20 ms
    local boom = find(events, function(e) return e.cat == "server" and e.name == "GET /boom" end)
    assert.equal(500, boom.args.status)
    -- the handler's track: the request line, in the group of the serve call
    local track = find(events, function(e) return e.ph == "M" and e.name == "thread_name" and e.tid == slow.tid end)
    assert.equal("GET /slow", track.args.name)
    assert.matches("^spawned at [^\n]*observe_spec.lua:" .. line .. "$", track.args.group)
  end)
end)

describe("trace of a pool", function()
  it("draws each item on a worker track, as many tracks as ran at once", function()
    local trace = os.tmpname()
    corio.run(function()
      corio.trace_start(trace)
      corio.threads.map(function(x)
        local t = os.clock()
        while os.clock() - t < 0.005 do end
        return x
      end, {1, 2, 3, 4}, {threads = 2})
      corio.trace_stop()
    end)
    local events = corio.json.decode(slurp(trace))
    os.remove(trace)
    local items, last_end = {}, {}
    for _, e in ipairs(events) do
      if e.cat == "pool" then
        items[e.args.index] = true
        assert.truthy(e.name:match("^corio%.threads%.map item %d$"), e.name)
        -- a track's items do not overlap
        assert.is_true((last_end[e.tid] or 0) <= e.ts, "overlap on track " .. e.tid)
        last_end[e.tid] = e.ts + e.dur
      end
    end
    assert.same({true, true, true, true}, items)
    local tracks = 0
    for _ in pairs(last_end) do tracks = tracks + 1 end
    assert.is_true(tracks >= 1 and tracks <= 2, tostring(tracks))
  end)
end)

describe("timeline", function()
  it("--timeline draws a 10-task script as SVG with 10 rows", function()
    local s = script([[
local ts = {}
for i = 1, 10 do ts[i] = corio.spawn(function() corio.sleep(0.01 * i) end) end
corio.wait(ts)
]])
    local svg = os.tmpname()
    local out, rc = sh(bin .. " --timeline " .. svg .. " " .. s)
    assert.equal("", out)
    assert.equal(0, rc)
    -- parsed as XML by python's expat
    local py = script([[
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
rows = [g for g in root.iter(ns + "g") if "task" in g.get("class", "").split()]
titles = [t.text for g in rows for t in g.iter(ns + "title")]
print(len(rows), sum(1 for t in titles if t and "sleep" in t))
]])
    out, rc = sh("/usr/bin/python3 " .. py .. " " .. svg)
    os.remove(py)
    os.remove(s)
    os.remove(svg)
    assert.equal(0, rc)
    assert.equal("10 10\n", out)
  end)

  it("groups rows past 100 tasks, with counts", function()
    local trace, svg = os.tmpname(), os.tmpname()
    corio.run(function()
      corio.trace_start(trace)
      local ts = {}
      for i = 1, 150 do ts[i] = corio.spawn(function() corio.sleep(0.001) end) end
      corio.wait(ts)
      corio.trace_stop()
    end)
    corio.timeline(trace, svg)
    local text = slurp(svg)
    os.remove(trace)
    os.remove(svg)
    assert.matches("spawned at [^<]*observe_spec.lua:%d+ %(150%)", text)
    assert.falsy(text:find('class="row task"', 1, true))
  end)
end)

describe("file paths", function()
  -- fopen would cut the name at the NUL and write "a", not fail
  it("refuses a path holding a NUL byte, naming the function and argument", function()
    local dir = os.tmpname()
    os.remove(dir)
    local cases = {
      {corio.trace_start, {dir .. "\0x"}, "'corio.trace_start'"},
      {corio.dump_tasks, {dir .. "\0x"}, "'corio.dump_tasks'"},
      {corio.timeline, {"/dev/null", dir .. "\0x"}, "corio.timeline: bad argument #2"},
    }
    for _, c in ipairs(cases) do
      local ok, e = pcall(c[1], table.unpack(c[2]))
      assert.is_false(ok)
      assert.truthy(tostring(e):find(c[3], 1, true), tostring(e))
      assert.truthy(tostring(e):find("NUL byte", 1, true), tostring(e))
      assert.is_nil(io.open(dir), "a file was written at the cut name")
    end
  end)
end)

describe("teardown", function()
  it("closes the server", function()
    srv:close()
  end)
end)
