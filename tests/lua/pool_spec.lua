-- Worker threads and processes: corio.to_thread, corio.threads.map,
-- corio.processes.map.
local corio = require "corio"

local shell = require "tests.lua.support.shell"
local bin, lua, sh = shell.bin, shell.lua, shell.sh

-- A map function that proves its items run at once, with no clock to
-- flake on a loaded machine: item x marks its start in a directory, then
-- waits (at most 5 s) until all the items have started.  Run one after
-- another, the first would give up.
local function all_at_once(x)
  io.open(x.dir .. "/" .. x.i, "w"):close()
  for _ = 1, 100 do
    local started = 0
    for i = 1, x.n do
      local f = io.open(x.dir .. "/" .. i)
      if f then
        f:close()
        started = started + 1
      end
    end
    if started == x.n then return true end
    os.execute("sleep 0.05")
  end
  return false
end

-- The inputs of all_at_once for n items, and the result expected.
local function at_once_items(n)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  local items, expected = {}, {n = n}
  for i = 1, n do
    items[i] = {dir = dir, i = i, n = n}
    expected[i] = true
  end
  return items, expected, function() os.execute("rm -rf '" .. dir .. "'") end
end

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

describe("corio.to_thread", function()
  it("returns fn's results, copied both ways", function()
    local a, b, c, d = corio.to_thread(function(i, f, s, t)
      return math.type(i), math.type(f), #s, t.inner.list[3]
    end, 1, 2.0, "a\0b\255", {inner = {list = {1, 2, "three"}}})
    assert.same({"integer", "float", 4, "three"}, {a, b, c, d})
    local i, f, s, t = corio.to_thread(function()
      return 7, 7.0, "x\0y", {n = {deep = {true, false}}, [1.5] = "k"}
    end)
    assert.equal("integer", math.type(i))
    assert.equal("float", math.type(f))
    assert.equal("x\0y", s)
    assert.same({n = {deep = {true, false}}, [1.5] = "k"}, t)
  end)

  it("keeps nils and the number of values", function()
    assert.equal(3, select("#", corio.to_thread(function(...)
      return ...
    end, nil, 2, nil)))
    assert.same({n = 3, nil, 2, nil}, table.pack(corio.to_thread(function(...) return ... end, nil, 2, nil)))
  end)

  it("copies cycles and shared subtables", function()
    local t = {name = "root"}
    t.self = t
    t.a = {x = 1}
    t.b = t.a
    local r = corio.to_thread(function(v)
      return {same_self = v.self == v, same_sub = v.a == v.b, back = v}
    end, t)
    assert.is_true(r.same_self)
    assert.is_true(r.same_sub)
    assert.equal(r.back, r.back.self)
    assert.equal("root", r.back.name)
  end)

  it("lets the corio module travel as an upvalue: it becomes the worker's", function()
    local c = corio
    assert.equal("ok", corio.to_thread(function() return c.sleep(0, "ok") end))
  end)

  it("refuses upvalues other than _ENV and corio, naming them", function()
    local secret = 42
    local ok, err = pcall(corio.to_thread, function() return secret end)
    assert.is_false(ok)
    assert.matches("upvalue 'secret' of the function cannot be sent to a thread", err, 1, true)
    ok, err = pcall(corio.to_thread, print)
    assert.is_false(ok)
    assert.matches("C function", err)
  end)

  it("names the path of a value that cannot be copied", function()
    local ok, err = pcall(corio.to_thread, function() end, 1, {x = {y = print}})
    assert.is_false(ok)
    assert.matches("cannot copy args[2].x.y: it is a function", err, 1, true)
    ok, err = pcall(corio.to_thread, function() return {f = function() end} end)
    assert.is_false(ok)
    assert.matches("cannot copy result[1].f: it is a function", err, 1, true)
  end)

  it("gives fn the worker's globals: standard libraries and corio", function()
    local r = corio.to_thread(function(n)
      return string.rep("ab", n) .. tostring(math.floor(2.5)) .. type(corio.sleep) .. type(require "corio")
    end, 2)
    assert.equal("abab2functiontable", r)
    -- the worker's globals are its own
    GLOBAL_OF_THE_CALLER = 1
    assert.is_nil(corio.to_thread(function() return GLOBAL_OF_THE_CALLER end))
    GLOBAL_OF_THE_CALLER = nil
  end)

  it("raises fn's error with its message preserved", function()
    local ok, err = pcall(corio.to_thread, function() error("exact message", 0) end)
    assert.is_false(ok)
    assert.equal("exact message", err)
    ok, err = pcall(corio.to_thread, function() error({code = 7}) end)
    assert.same({code = 7}, err)
    -- a corio error keeps its kind
    ok, err = pcall(corio.to_thread, function()
      corio.wait_for(function() corio.sleep(1) end, 0.01)
    end)
    assert.is_false(ok)
    assert.is_true(err == corio.TimeoutError)
  end)

  it("runs fn's waits on the worker's own loop", function()
    assert.equal("slept", corio.to_thread(function() return corio.sleep(0.01, "slept") end))
  end)

  it("keeps the loop running while a thread works", function()
    local ticks = 0
    local ticker = corio.spawn(function()
      while true do
        corio.sleep(0.01)
        ticks = ticks + 1
      end
    end)
    corio.to_thread(function()
      local t = os.clock()
      while os.clock() - t < 0.3 do end
    end)
    ticker:cancel()
    assert.is_true(ticks >= 5, "ticks: " .. ticks)
  end)

  it("runs 200 threads at once", function()
    local t0 = corio.time()
    local tasks = {}
    for i = 1, 200 do
      tasks[i] = corio.spawn(function()
        return corio.to_thread(function(k)
          os.execute("sleep 0.2")
          return k
        end, i)
      end)
    end
    local r = corio.gather(tasks)
    local elapsed = corio.time() - t0
    for i = 1, 200 do assert.equal(i, r[i]) end
    -- one after another would take 40 s
    assert.is_true(elapsed < 200 * 0.2 / 2, "took " .. elapsed .. " s")
  end)

  it("works inside a task", function()
    local t = corio.spawn(function(x) return corio.to_thread(function(y) return y * 3 end, x) end, 5)
    assert.equal(15, t:await())
  end)

  it("cancelling the caller drops the result; the thread still finishes", function()
    -- the thread leaves marks in a directory: "started", then "finished"
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local function exists(name)
      local f = io.open(dir .. "/" .. name)
      if f then f:close() end
      return f ~= nil
    end
    local function wait_for(name) -- at most 5 s
      for _ = 1, 500 do
        if exists(name) then return true end
        corio.sleep(0.01)
      end
      return false
    end
    local t = corio.spawn(function()
      return corio.to_thread(function(d)
        io.open(d .. "/started", "w"):close()
        os.execute("sleep 0.2")
        io.open(d .. "/finished", "w"):close()
        return "late"
      end, dir)
    end)
    assert.is_true(wait_for("started"))
    t:cancel() -- while the thread sleeps
    local ok, err = pcall(corio.await, t)
    assert.is_false(ok)
    assert.is_true(err == corio.CancelledError)
    assert.is_true(wait_for("finished"), "the thread did not run to its end")
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

describe("corio.threads.map", function()
  it("returns results in input order", function()
    local items = {}
    for i = 1, 20 do items[i] = i end
    local r = corio.threads.map(function(x)
      os.execute("sleep 0." .. (20 - x) % 3)
      return x * x
    end, items, {threads = 8})
    assert.equal(20, r.n)
    for i = 1, 20 do assert.equal(i * i, r[i]) end
  end)

  it("runs n workers that pull items and keep their globals", function()
    local r = corio.threads.map(function(x)
      COUNT = (COUNT or 0) + 1
      return COUNT
    end, {1, 2, 3, 4}, {threads = 1})
    assert.same({1, 2, 3, 4, n = 4}, r)
  end)

  it("uses n threads at once", function()
    local items, expected, clean = at_once_items(8)
    local r = corio.threads.map(all_at_once, items, {threads = 8})
    clean()
    assert.same(expected, r)
  end)

  it("returns an empty array for no items", function()
    assert.same({n = 0}, corio.threads.map(function() end, {}))
  end)

  it("names the item that cannot be copied", function()
    local ok, err = pcall(corio.threads.map, function() end, {1, 2, {x = coroutine.create(print)}})
    assert.is_false(ok)
    assert.matches("cannot copy items[3].x: it is a thread", err, 1, true)
  end)

  it("raises a WorkerError naming the first failed item, after the others ran", function()
    local ok, err = pcall(corio.threads.map, function(x)
      if x % 2 == 0 then error("even " .. x, 0) end
      return x * 10
    end, {1, 2, 3, 4, 5})
    assert.is_false(ok)
    assert.equal("WorkerError", err.name)
    assert.equal(2, err.index)
    assert.equal("even 2", err.cause)
    assert.matches("item 2 failed: even 2", tostring(err), 1, true)
    assert.same({10, nil, 30, nil, 50, n = 5}, err.results)
    assert.same({[2] = "even 2", [4] = "even 4"}, err.errors)
    assert.matches("stack traceback", err.traceback)
  end)

  it("checks its options", function()
    assert.has_error(function() corio.threads.map(function() end, {1}, {threads = 0}) end)
    assert.has_error(function() corio.threads.map(function() end, 5) end)
  end)

  it("refuses unknown options and bad values, naming them", function()
    local function err_of(opts)
      local ok, err = pcall(corio.threads.map, function() end, {1}, opts)
      assert.is_false(ok)
      return err
    end
    assert.matches("corio.threads.map: unknown option 'bogus'", err_of{bogus = 1}, 1, true)
    assert.matches("corio.threads.map: option names are strings (got a number key)", err_of{1}, 1, true)
    assert.matches("corio.threads.map: option 'threads' must be an integer from 1 to 10000 (got 1.5)",
      err_of{threads = 1.5}, 1, true)
    assert.matches("corio.threads.map: option 'threads' must be an integer from 1 to 10000 (got 2)",
      err_of{threads = "2"}, 1, true)
    -- a thread cannot be killed: a timeout it could not keep is refused
    assert.matches("corio.threads.map: option 'timeout' is only supported by corio.processes.map",
      err_of{timeout = 1}, 1, true)
    assert.matches("corio.threads.map: options must be a table, not a number", err_of(5), 1, true)
  end)

  -- os.exit would end the whole program from any thread: in a worker
  -- thread it raises instead, so the item fails, as a worker process's
  -- exit fails its item
  it("os.exit in a worker thread fails its item; the program goes on", function()
    local out, rc = sh(bin .. [[ -e '
      local ok, err = pcall(corio.threads.map, function(x)
        if x == 2 then os.exit(7) end
        return x
      end, {1, 2, 3})
      print(ok, err.name, err.index, err.cause, err.results[3])
      ok, err = pcall(corio.threads.map, function() os.exit(true, true) end, {1})
      print(ok, err.cause)
      print(pcall(corio.to_thread, function() os.exit(false) end))
      print("still here")']])
    assert.equal(0, rc, out)
    assert.equal(
      "false\tWorkerError\t2\t(command line):3: corio: os.exit is not allowed in a worker thread\t3\n" ..
      "false\t(command line):7: corio: os.exit is not allowed in a worker thread\n" ..
      "false\t(command line):9: corio: os.exit is not allowed in a worker thread\n" ..
      "still here\n", out)
  end)
end)

describe("corio.processes.map", function()
  it("returns results in input order, values copied both ways", function()
    local r = corio.processes.map(function(x)
      return {x = x, type = math.type(x.n), s = x.s .. "\0"}
    end, {{n = 1, s = "a"}, {n = 2.0, s = "b\255"}, {n = 3, s = ""}}, {processes = 2})
    assert.equal(3, r.n)
    assert.same({x = {n = 1, s = "a"}, type = "integer", s = "a\0"}, r[1])
    assert.same({x = {n = 2.0, s = "b\255"}, type = "float", s = "b\255\0"}, r[2])
    assert.equal("float", math.type(r[2].x.n))
    assert.equal("\0", r[3].s)
  end)

  it("runs on other processes", function()
    local pids = corio.processes.map(function()
      local f = io.open("/proc/self/stat")
      local pid = f:read("a"):match("^(%d+)")
      f:close()
      return pid
    end, {1, 2})
    assert.are_not.equal(my_pid(), pids[1])
  end)

  it("gives fn the worker's globals", function()
    local r = corio.processes.map(function(x)
      return string.format("%s-%s", x, type(corio.sleep))
    end, {"a", "b"}, {processes = 1})
    assert.same({"a-function", "b-function", n = 2}, r)
  end)

  it("refuses upvalues and names bad items", function()
    local up = {}
    local ok, err = pcall(corio.processes.map, function() return up end, {1})
    assert.is_false(ok)
    assert.matches("upvalue 'up' of the function cannot be sent to a process", err, 1, true)
    ok, err = pcall(corio.processes.map, function() end, {1, {1, 2, {f = print}}})
    assert.matches("cannot copy items[2][3].f: it is a function", err, 1, true)
  end)

  it("preserves a worker's error message", function()
    local ok, err = pcall(corio.processes.map, function(x)
      if x == 2 then error("bad two", 0) end
      return x
    end, {1, 2, 3})
    assert.is_false(ok)
    assert.equal(2, err.index)
    assert.equal("bad two", err.cause)
    assert.same({1, nil, 3, n = 3}, err.results)
  end)

  it("reports a crashed worker as the error of its item; the others complete", function()
    local ok, err = pcall(corio.processes.map, function(x)
      if x == 3 then os.exit(3) end
      if x == 5 then os.execute("kill -9 $PPID") end
      return x * 2
    end, {1, 2, 3, 4, 5, 6, 7}, {processes = 2})
    assert.is_false(ok)
    assert.equal(3, err.index)
    assert.matches("exited with status 3 while running item 3", err.cause, 1, true)
    assert.matches("killed by signal 9 while running item 5", err.errors[5], 1, true)
    assert.same({2, 4, nil, 8, nil, 12, 14, n = 7}, err.results)
  end)

  it("kills its workers when the caller is cancelled", function()
    local t0 = corio.time()
    local t = corio.spawn(function()
      return corio.processes.map(function() os.execute("sleep 5") end, {1, 2}, {processes = 2})
    end)
    corio.sleep(0.2)
    t:cancel()
    assert.has_error(function() t:await() end)
    assert.is_true(corio.time() - t0 < 4.5) -- not the workers' 5 s
  end)

  it("runs the workers in parallel", function()
    local items, expected, clean = at_once_items(4)
    local r = corio.processes.map(all_at_once, items, {processes = 4})
    clean()
    assert.same(expected, r)
  end)

  -- a worker that never answers (stopped, or looping) would hang map
  -- forever: past its timeout it is killed and its item fails
  it("kills a worker running an item past its timeout; a fresh one runs the rest", function()
    local ok, err = pcall(corio.wait_for, function()
      return corio.processes.map(function(x)
        if x == 2 then os.execute("kill -STOP $PPID") end
        if x == 4 then while true do end end
        return x * 10
      end, {1, 2, 3, 4, 5}, {processes = 1, timeout = 0.5})
    end, 60) -- bounds the test when the timeout does not work
    assert.is_false(ok)
    assert.equal("WorkerError", err.name, tostring(err))
    assert.equal(2, err.index)
    assert.is_true(err.cause == corio.TimeoutError, tostring(err.cause))
    assert.matches("corio.processes.map: item 2 failed: TimeoutError: corio: item 2 ran past its " ..
      "timeout (0.5 s); its worker process was killed", tostring(err), 1, true)
    assert.is_true(err.errors[4] == corio.TimeoutError)
    assert.same({10, nil, 30, nil, 50, n = 5}, err.results)
  end)

  it("lets items that end in time finish under a timeout", function()
    local r = corio.processes.map(function(x)
      corio.sleep(0.05)
      return x + 1
    end, {1, 2, 3, 4}, {processes = 2, timeout = 30})
    assert.same({2, 3, 4, 5, n = 4}, r)
  end)

  it("refuses unknown options and bad values, naming them", function()
    local function err_of(opts)
      local ok, err = pcall(corio.processes.map, function() end, {1}, opts)
      assert.is_false(ok)
      return err
    end
    assert.matches("corio.processes.map: unknown option 'bogus'", err_of{bogus = 1}, 1, true)
    assert.matches("corio.processes.map: unknown option 'threads'", err_of{threads = 1}, 1, true)
    assert.matches("corio.processes.map: option 'processes' must be an integer from 1 to 1000 (got 0)",
      err_of{processes = 0}, 1, true)
    assert.matches("corio.processes.map: option 'timeout' must be a number of seconds > 0 (got 0)",
      err_of{timeout = 0}, 1, true)
    assert.matches("corio.processes.map: option 'timeout' must be a number of seconds > 0 (got 1)",
      err_of{timeout = "1"}, 1, true)
    assert.matches("corio.processes.map: option 'timeout' must be a number of seconds > 0 (got",
      err_of{timeout = 0 / 0}, 1, true)
    assert.matches("corio.processes.map: option 'executable' must be a string, not a number",
      err_of{executable = 5}, 1, true)
    assert.matches("corio.processes.map: options must be a table, not a string", err_of("x"), 1, true)
  end)

  it("tells when the worker executable cannot start", function()
    local ok, err = pcall(corio.processes.map, function() end, {1}, {executable = "/nonexistent/lua"})
    assert.is_false(ok)
    assert.matches("cannot start a worker process", err)
  end)
end)

describe("workers and the end of the program", function()
  -- Counted in a fresh process: the specs before this one leave sockets
  -- that open and close as the loop runs.
  it("leaves no descriptor, thread or zombie behind", function()
    local name = os.tmpname()
    local f = assert(io.open(name, "w"))
    f:write([==[
      local function pid()
        local f = assert(io.open("/proc/self/stat"))
        local p = f:read("a"):match("^(%d+)")
        f:close()
        return p
      end
      local function count(cmd)
        local p = assert(io.popen(cmd))
        local n = 0
        for _ in p:lines() do n = n + 1 end
        p:close()
        return n
      end
      local function fds() return count("ls /proc/" .. pid() .. "/fd") end
      local function threads() return count("ls /proc/" .. pid() .. "/task") end
      local function zombies() return count("ps -o stat= --ppid " .. pid() .. " | grep ^Z") end
      corio.to_thread(function() end) -- the hubs exist from now on
      corio.processes.map(function() end, {1})
      local fd0, th0 = fds(), threads()
      for _ = 1, 3 do
        corio.processes.map(function(x) return x end, {1, 2, 3}, {processes = 3})
        corio.threads.map(function(x) return x end, {1, 2, 3}, {threads = 3})
      end
      pcall(corio.processes.map, function(x)
        if x == 1 then os.exit(3) end
        if x == 2 then os.execute("kill -9 $PPID") end
      end, {1, 2, 3}, {processes = 2})
      pcall(corio.processes.map, function(x)
        if x == 1 then os.execute("kill -STOP $PPID") end
      end, {1, 2}, {processes = 1, timeout = 0.2})
      local a = corio.spawn(function() corio.to_thread(function() os.execute("sleep 0.2") end) end)
      local b = corio.spawn(function() corio.processes.map(function() os.execute("sleep 5") end, {1, 2}) end)
      corio.sleep(0.1)
      a:cancel()
      b:cancel()
      -- the thread ends and is joined, the workers are reaped: within 5 s
      -- (a loaded machine under the sanitizer took more than 0.4)
      for _ = 1, 50 do
        corio.sleep(0.1)
        if fds() <= fd0 and threads() <= th0 and zombies() == 0 then break end
      end
      print(fds() - fd0, threads() - th0, zombies())
    ]==])
    f:close()
    local out, rc = sh(bin .. " " .. name)
    os.remove(name)
    assert.equal(0, rc)
    -- no growth (a descriptor inherited from busted may close meanwhile)
    local fds, threads, zombies = out:match("^(%-?%d+)\t(%-?%d+)\t(%d+)\n$")
    assert.is_true(tonumber(fds) <= 0, out)
    assert.is_true(tonumber(threads) <= 0, out)
    assert.equal("0", zombies)
  end)

  it("a script that fails while threads and processes work exits cleanly", function()
    local out, rc = sh(bin .. [[ -e '
      corio.spawn(function() corio.to_thread(function() os.execute("sleep 0.3") end) end)
      corio.spawn(function() corio.processes.map(function() os.execute("sleep 5") end, {1}) end)
      corio.sleep(0.1)
      error("script failed")']])
    assert.equal(1, rc)
    assert.matches("script failed", out)
    assert.not_matches("AddressSanitizer", out)
  end)

  it("plain lua5.4 runs both pools: workers load corio.so by its path", function()
    local dir = bin:match("^(.*)/[^/]*$") or "."
    local out, rc = sh(lua .. [[ -e 'package.cpath="]] .. dir .. [[/?.so;"..package.cpath
      local corio = require "corio"
      local r = corio.processes.map(function(x) return x * 2 end, {1, 2, 3}, {processes = 2})
      local s = corio.to_thread(function(a) return a .. "!" end, "t")
      print(table.concat(r, ","), s)']])
    assert.equal("2,4,6\tt!\n", out)
    assert.equal(0, rc)
  end)

  it("the executable waits for a thread of a spawned task", function()
    local out, rc = sh(bin .. [[ -e '
      corio.spawn(function() print(corio.to_thread(function() os.execute("sleep 0.1") return "done" end)) end)']])
    assert.equal(0, rc)
    assert.equal("done\n", out)
  end)
end)
