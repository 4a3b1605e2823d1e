-- Smoke test of the article's experiments (scripts/NN_*.lua): each runs
-- against its embedded backend with a short latency, and each lesson holds:
-- serial where the article says serial, concurrent where it says concurrent.
local shell = require "tests.lua.support.shell"
local exe = assert(os.getenv("CORIO_BIN"), "CORIO_BIN: the corio executable")
local out_dir = os.tmpname()
os.remove(out_dir)

local function find(prefix)
  local p = io.popen("ls scripts/" .. prefix .. "_*.lua")
  local path = p:read("l")
  p:close()
  return assert(path, "no script " .. prefix)
end

-- Run a script in its own process (it starts its own backend child);
-- returns its output, and its exit code.
local function run(prefix, args)
  return shell.sh(("timeout -k 5 120 %s %s %s"):format(exe, find(prefix), args or ""))
end

local function cost(out)
  return tonumber((assert(out:match("Cost time:%s+([%d.]+)"), "no Cost time in:\n" .. out)))
end

local function lines(out)
  local t = {}
  for l in out:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("the article's scripts", function()
  teardown(function() os.execute("rm -rf '" .. out_dir .. "'") end)

  it("01: a coroutine object runs only inside the loop", function()
    local out, rc = run("01")
    assert.equal(0, rc, out)
    local l = lines(out)
    assert.matches("^Coroutine:%s+<coroutine get_number at .- pending>$", l[1])
    assert.same({"After calling execute", "Number:\t1", "After calling loop"},
                {l[2], l[3], l[4]})
  end)

  for _, prefix in ipairs({"02", "03"}) do
    it(prefix .. ": the task is pending, then finished with result=1", function()
      local out, rc = run(prefix)
      assert.equal(0, rc, out)
      local l = lines(out)
      assert.matches("^Task:%s+<Task pending name='Task%-1' coro=get_number", l[3])
      assert.equal("Number:\t1", l[4])
      assert.equal("Task:\t<Task finished name='Task-1' result=1>", l[5])
    end)
  end

  it("04: the done callback gets the finished task", function()
    local out, rc = run("04", "--latency 0.05")
    assert.equal(0, rc, out)
    local l = lines(out)
    assert.matches("^Task:%s+<Task pending", l[1])
    assert.equal("Status:\t200", l[2])
    assert.equal("Task:\t<Task finished name='Task-1' result=200>", l[3])
  end)

  it("05: task:result() after the loop", function()
    local out, rc = run("05", "--latency 0.05")
    assert.equal(0, rc, out)
    assert.matches("Task Result:\t200\n", out)
  end)

  it("06: five tasks with wait", function()
    local out, rc = run("06", "--latency 0.05")
    assert.equal(0, rc, out)
    local _, pending = out:match("^Tasks: %[(.-)%]\n"):gsub("<Task pending", "")
    assert.equal(5, pending)
    local _, results = out:gsub("Task Result:\t200\n", "")
    assert.equal(5, results)
  end)

  -- The backend's /welcome takes a tenth of the latency.
  local function assert_serial(prefix, n, latency)
    local out, rc = run(prefix, ("--n %d --latency %s"):format(n, latency))
    assert.equal(0, rc, out)
    local starts = {}
    for t in out:gmatch("waiting for %S+ ([%d.]+)") do starts[#starts + 1] = tonumber(t) end
    assert.equal(n, #starts)
    local each = latency / 10
    for i = 2, n do -- each task starts only after the previous one's request
      assert.is_true(starts[i] - starts[i - 1] >= each * 0.8,
                     ("task %d started %.3f s after task %d"):format(i, starts[i] - starts[i - 1], i - 1))
    end
    assert.is_true(cost(out) >= n * each * 0.8, out)
  end

  it("07: blocking requests inside coroutines run one after another", function()
    assert_serial("07", 5, 0.5)
  end)

  it("08: awaiting a blocking call is still serial", function()
    assert_serial("08", 10, 0.5)
  end)

  it("09: corio.fetch runs the requests concurrently", function()
    local out, rc = run("09", "--n 10 --latency 0.3")
    assert.equal(0, rc, out)
    -- serial would take 10 x 0.3 s
    local secs = cost(out)
    assert.is_true(secs >= 0.3 and secs < 2.7, out)
  end)

  it("10: the time stays flat and 502s appear past the backend's capacity", function()
    local out, rc = run("10", ("--sizes 1,5,20 --latency 1 --capacity 10 --out %s"):format(out_dir))
    assert.equal(0, rc, out)
    local rows = {}
    for tasks, ok, bad, failed, secs in out:gmatch("\n%s*(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+([%d.]+)") do
      rows[#rows + 1] = {tonumber(tasks), tonumber(ok), tonumber(bad), tonumber(failed), tonumber(secs)}
    end
    assert.same({1, 1, 0, 0}, {table.unpack(rows[1], 1, 4)})
    assert.same({5, 5, 0, 0}, {table.unpack(rows[2], 1, 4)})
    assert.same({20, 10, 10, 0}, {table.unpack(rows[3], 1, 4)})
    -- flat: about one latency (1 s) each; five one after another take 5 s
    for _, r in ipairs(rows) do assert.is_true(r[5] < 4, out) end
    local f = assert(io.open(out_dir .. "/scaling.svg"))
    local svg = f:read("a")
    f:close()
    assert.matches("^<svg", svg)
    assert.matches("<polyline", svg)
    assert.matches("10 x 502", svg)
  end)

  it("11: sequential > processes > threads ~ coroutines, as in the article", function()
    local n, lat = 16, 0.2
    local out, rc = run("11", ("--n %d --latency %s --processes 4 --workers 16 --out %s")
      :format(n, lat, out_dir))
    assert.equal(0, rc, out)
    local secs = {}
    for model, ok, failed, s in out:gmatch("\n(%a+)%s+%d+%s+%d+%s+(%d+)%s+(%d+)%s+([%d.]+)") do
      assert.equal(n, tonumber(ok), out)
      assert.equal(0, tonumber(failed), out)
      secs[model] = tonumber(s)
    end
    assert.is_true(secs.sequential >= n * lat * 0.9, out)         -- 3.2 s
    assert.is_true(secs.processes >= (n / 4) * lat * 0.9, out)    -- 0.8 s
    assert.is_true(secs.processes < secs.sequential / 2, out)
    assert.is_true(secs.threads < secs.processes, out)           -- ~0.2 s
    assert.is_true(secs.coroutines < secs.processes, out)
    local f = assert(io.open(out_dir .. "/comparison.svg"))
    local svg = f:read("a")
    f:close()
    local _, bars = svg:gsub("<rect x=", "")
    assert.equal(4, bars)
  end)

  it("a bad option prints the usage line and exits 2", function()
    local out, rc = run("09", "--n zero")
    assert.equal(2, rc)
    assert.matches("bad value 'zero' for %-%-n", out)
    assert.matches("usage: corio %S+09_async_fetch.lua", out)
  end)
end)
