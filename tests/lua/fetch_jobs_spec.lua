-- scripts/fetch_many.lua --redis: jobs shared by worker processes through
-- a real redis-server (started and stopped by PID here), fetching from a
-- corio.serve server in this process (the spec waits with shell.finish
-- and corio.sleep, which keep this loop serving).
local corio = require "corio"
local shell = require "tests.lua.support.shell"
local rs = require "tests.lua.support.redis"
local json = corio.json

local hits, nhits = {}, 0
local srv = corio.serve{port = 0, handler = function(req)
  hits[req.path] = (hits[req.path] or 0) + 1
  nhits = nhits + 1
  corio.sleep(0.002) -- a job that lasts long enough to kill a worker in it
  return "hello"
end}
local tool = shell.bin .. " scripts/fetch_many.lua"

local function url_file(n, prefix)
  local t = {}
  for i = 1, n do t[i] = ("%s/%s%d"):format(srv.url, prefix, i) end
  return shell.script(table.concat(t, "\n") .. "\n")
end

-- A command in the background; its PID (the process itself: the shell
-- execs it) is in job.pidfile once it runs.
local function background(cmd)
  local pidfile = os.tmpname()
  local j = shell.bg(("echo $$ > %s; exec %s"):format(pidfile, cmd))
  j.pidfile = pidfile
  return j
end

local function worker(redis, job, extra)
  return background(("%s --redis %s --job %s --work %s"):format(tool, redis, job,
    extra or ""))
end

local function pid_of(j)
  local f = assert(io.open(j.pidfile))
  local pid = f:read("n")
  f:close()
  return pid
end

-- Wait until `cond()` holds (at most `limit` seconds).
local function wait_until(cond, limit, what)
  local deadline = corio.time() + (limit or 60)
  while not cond() do
    assert(corio.time() < deadline, "timed out waiting for " .. what)
    corio.sleep(0.05)
  end
end

-- The URLs of the job's stream, in order, and how many times each is in.
local function stream_of(c, job)
  local list, times = {}, {}
  local entries = c:call("XRANGE", "fetch:{" .. job .. "}:urls", "-", "+")
  for _, e in ipairs(entries) do
    local url = e[2][2]
    list[#list + 1] = url
    times[url] = (times[url] or 0) + 1
  end
  return list, times
end

-- Every URL of prefix 1..n is in the job's stream exactly once, nothing
-- else is, and the job counts n enqueued.
local function assert_once(c, job, n, prefix)
  local list, times = stream_of(c, job)
  for i = 1, n do
    local url = ("%s/%s%d"):format(srv.url, prefix, i)
    assert.equal(1, times[url], url .. " in the stream once")
  end
  assert.equal(n, #list, "entries in the stream")
  assert.equal(tostring(n), c:call("HGET", "fetch:{" .. job .. "}:meta", "enqueued"))
end

local function enqueue(redis, job, file, extra)
  return shell.finish(shell.bg(("%s --redis %s --job %s --enqueue %s %s"):format(
    tool, redis, job, file, extra or "")), 60)
end

local function results_of(redis, job)
  local file = os.tmpname()
  local _, rc = shell.sh(("%s --redis %s --job %s --results %s"):format(
    tool, redis, job, file))
  assert.equal(0, rc)
  local by_url, n = {}, 0
  for line in io.lines(file) do
    local r = json.decode(line)
    assert.is_nil(by_url[r.url], "one result per URL: " .. r.url)
    by_url[r.url] = r
    n = n + 1
  end
  os.remove(file)
  return by_url, n
end

describe("fetch_many --redis", function()
  local server, r

  setup(function()
    server = rs.start()
    r = corio.redis.connect(server.url)
  end)
  teardown(function()
    r:close()
    rs.stop(server)
    srv:close(0.1)
  end)

  it("refuses bad input with clear errors", function()
    local cases = {
      {"--redis " .. server.url .. " --job 'a b' --status", 2, "a job name is letters"},
      {"--redis http://x --job j --status", 2, "--redis: corio.redis.connect: bad URL"},
      {"--redis " .. server.url .. " --job j", 2, "give one of --enqueue, --work"},
      {"--job j --work", 2, "--redis and --job go together"},
      {"--work", 2, "need --redis and --job"},
      {"--redis " .. server.url .. " --job nosuchjob --work", 1,
        "no job \"nosuchjob\" at " .. server.url .. ": enqueue URLs first"},
      {"--redis redis://127.0.0.1:" .. srv.port .. " --job j --status", 1,
        "not a Redis server?"},
      {"--redis redis://127.0.0.1:" .. rs.free_port() .. " --job j --status", 1,
        "Connection refused"},
    }
    for _, c in ipairs(cases) do
      local out, rc, err = shell.finish(shell.bg(tool .. " " .. c[1] .. " < /dev/null"))
      assert.equal(c[2], rc, c[1] .. ": " .. out .. err)
      assert.matches(c[3], err, 1, true)
    end
    -- nothing was made for the job that does not exist
    assert.equal(0, r:call("EXISTS", "fetch:{nosuchjob}:urls"))
  end)

  it("drains 10,000 URLs with three workers, one killed, one late: one result each", function()
    local job = "big" .. os.time()
    local file = url_file(10000, "b")
    local _, rc, err = shell.finish(shell.bg(("%s --redis %s --job %s --enqueue %s")
      :format(tool, server.url, job, file)))
    os.remove(file)
    assert.equal(0, rc, err)
    assert.matches("10000 URLs enqueued in job " .. job, err, 1, true)
    local results_key = "fetch:{" .. job .. "}:results"
    local opts = "-c 20 --batch 50 --claim-idle 1"
    local w = {}
    for i = 1, 3 do w[i] = worker(server.url, job, opts .. " --consumer w" .. i) end
    finally(function() -- after a failure, no worker is left running
      for i = 1, 3 do pcall(function() shell.sh("kill -KILL " .. pid_of(w[i])) end) end
    end)
    wait_until(function() return r:call("HLEN", results_key) >= 1500 end, 60, "progress")
    -- w1 dies with entries in flight: they stay pending, then are claimed
    shell.sh("kill -KILL " .. pid_of(w[1]))
    local late = worker(server.url, job, opts .. " --consumer late")
    for i = 1, 3 do
      local _, wrc, werr = shell.finish(w[i], 120)
      if i > 1 then assert.equal(0, wrc, werr) end
    end
    local _, lrc, lerr = shell.finish(late, 120)
    assert.equal(0, lrc, lerr)
    local by_url, n = results_of(server.url, job)
    assert.equal(10000, n)
    local late_took = 0
    for i = 1, 10000 do
      local rec = by_url[("%s/b%d"):format(srv.url, i)]
      assert.is_table(rec, "no result for b" .. i)
      assert.equal(200, rec.status)
      if rec.worker == "late" then late_took = late_took + 1 end
    end
    assert.is_true(late_took > 0, "the late worker took no work")
    assert.same({0}, {r:call("XPENDING", "fetch:{" .. job .. "}:urls", "workers")[1]})
    local out = shell.sh(("%s --redis %s --job %s --status"):format(tool, server.url, job))
    assert.matches("done      10000\n", out, 1, true)
    assert.matches("pending   0\n", out, 1, true)
    assert.matches("waiting   0\n", out, 1, true)
    assert.matches("enqueued  10000\n", out, 1, true)
  end)

  it("adds each URL once when the reply of a batch is lost after Redis ran it", function()
    -- the proxy drops the connection at the first reply after the batch
    -- that holds /l1234 went through: Redis ran it (and maybe the
    -- batches before it), the client saw a reset and sends them again
    local proxy = background(("python3 tests/lua/support/drop_reply_proxy.py %d /l1234")
      :format(server.port))
    finally(function() pcall(function() shell.sh("kill " .. pid_of(proxy)) end) end)
    local port
    wait_until(function()
      port = tonumber((shell.readfile(proxy.base .. ".out") or ""):match("^(%d+)\n"))
      return port ~= nil
    end, 10, "the proxy")
    local file = url_file(2000, "l")
    local _, rc, err = enqueue("redis://127.0.0.1:" .. port, "lost", file, "--batch 10")
    os.remove(file)
    assert.equal(0, rc, err)
    assert.matches("dropped", shell.readfile(proxy.base .. ".out"), 1, true)
    assert_once(r, "lost", 2000, "l")
  end)

  it("a rerun of --enqueue after a SIGKILL mid-way adds the rest, nothing twice", function()
    local job = "rerun"
    local file = url_file(3000, "k")
    -- the enqueuer reads its first 1000 URLs from a FIFO, then waits for
    -- more: killed there, it has batches in flight
    local fifo = os.tmpname()
    os.remove(fifo)
    shell.sh("mkfifo " .. fifo)
    local feed = assert(io.open(fifo, "r+")) -- O_RDWR: opens without a reader
    local enq = background(("%s --redis %s --job %s --enqueue - --batch 50 < %s"):format(
      tool, server.url, job, fifo))
    finally(function()
      pcall(function() shell.sh("kill -KILL " .. pid_of(enq)) end)
      feed:close()
      os.remove(fifo)
    end)
    local n = 0
    for line in io.lines(file) do
      if n == 1000 then break end
      feed:write(line, "\n")
      n = n + 1
    end
    feed:flush()
    local key = "fetch:{" .. job .. "}:urls"
    wait_until(function() return r:call("XLEN", key) >= 500 end, 30, "the first batches")
    shell.sh("kill -KILL " .. pid_of(enq))
    local _, krc = shell.finish(enq, 10)
    assert.equal(137, krc)
    local before = r:call("XLEN", key)
    assert.is_true(before >= 500 and before <= 1000, "in before the kill: " .. before)

    local _, rc, err = enqueue(server.url, job, file)
    assert.equal(0, rc, err)
    assert_once(r, job, 3000, "k")
    assert.matches(("%d URLs enqueued in job %s"):format(3000 - before, job), err, 1, true)
    -- and the job completes: one result per URL
    local _, wrc, werr = shell.finish(worker(server.url, job, "-c 50"), 120)
    assert.equal(0, wrc, werr)
    local _, done = results_of(server.url, job)
    assert.equal(3000, done)
    os.remove(file)
  end)

  it("a list enqueued again adds only what is new; another list is a new segment", function()
    local job = "segments"
    local function lines(prefix, from, to)
      local t = {}
      for i = from, to do t[#t + 1] = ("%s/%s%d"):format(srv.url, prefix, i) end
      return table.concat(t, "\n") .. "\n"
    end
    local a = shell.script(lines("s", 1, 250))
    local grown = shell.script(lines("s", 1, 300)) -- the same list, 50 more lines
    local other = shell.script(lines("t", 1, 20))
    local edited = shell.script(lines("s", 1, 200) .. lines("x", 201, 400))
    local short = shell.script(lines("s", 1, 120))
    finally(function()
      for _, f in ipairs{a, grown, other, edited, short} do os.remove(f) end
    end)
    local cases = {
      {a, 0, "250 URLs enqueued in job segments"},
      {a, 0, "0 URLs enqueued in job segments in %S+ s %(the first 250 were in it already%)"},
      {grown, 0, "50 URLs enqueued in job segments in %S+ s %(the first 250"},
      {other, 0, "20 URLs enqueued in job segments"},
      {other, 0, "0 URLs enqueued"},
      {edited, 1, "job segments has 300 URLs of a list that starts as this one, but its " ..
        "URL 300 is " .. srv.url .. "/x300, not " .. srv.url .. "/s300: another list, " ..
        "not added; enqueue it into another job %(%-%-job%)"},
      {short, 1, "job segments has 300 URLs of a list that starts as this one, but this " ..
        "one has 120"},
    }
    for i, c in ipairs(cases) do
      local _, rc, err = enqueue(server.url, job, c[1], "--batch 30")
      assert.equal(c[2], rc, i .. ": " .. err)
      assert.matches(c[3], err, 1, false)
    end
    local list, times = stream_of(r, job)
    assert.equal(320, #list)
    for i = 1, 300 do assert.equal(1, times[("%s/s%d"):format(srv.url, i)]) end
    for i = 1, 20 do assert.equal(1, times[("%s/t%d"):format(srv.url, i)]) end
    assert.equal("320", r:call("HGET", "fetch:{segments}:meta", "enqueued"))
  end)

  -- The lines of URLs prefix..from to prefix..to, in a new file.
  local function list_file(...)
    local text = {}
    for i = 1, select("#", ...), 3 do
      local prefix, from, to = select(i, ...)
      for n = from, to do text[#text + 1] = ("%s/%s%d\n"):format(srv.url, prefix, n) end
    end
    return shell.script(table.concat(text))
  end

  -- Enqueue each case {file, exit status, stderr pattern} into job, in turn.
  local function enqueue_all(job, cases)
    for i, c in ipairs(cases) do
      local _, rc, err = enqueue(server.url, job, c[1], "--batch 30")
      os.remove(c[1])
      assert.equal(c[2], rc, i .. ": " .. err)
      assert.matches(c[3], err, 1, false)
    end
  end

  -- a list of 50 URLs, then the same file grown (to 80, ...): each run
  -- adds only the new lines, and the grown list run again adds nothing
  for _, sizes in ipairs{{50, 80}, {50, 250}, {50, 70, 400}} do
    local job = "grow" .. table.concat(sizes, "_")
    it(("a short list that grows adds only its new URLs: %s"):format(
      table.concat(sizes, " then ")), function()
      local cases = {}
      for i, n in ipairs(sizes) do
        local before = sizes[i - 1]
        cases[#cases + 1] = {list_file("g", 1, n), 0, ("%d URLs enqueued in job %s"):format(
          n - (before or 0), job) .. (before and (" in %%S+ s %%(the first %d were"):format(
          before) or "")}
      end
      local n = sizes[#sizes]
      for _, again in ipairs{n, sizes[1]} do -- the grown list, the first one
        cases[#cases + 1] = {list_file("g", 1, again), 0,
          ("0 URLs enqueued in job %s in %%S+ s %%(the first %d were"):format(job, again)}
      end
      enqueue_all(job, cases)
      assert_once(r, job, n, "g")
    end)
  end

  it("the start of a list in the job adds nothing; a list edited past it is refused", function()
    local job = "prefix"
    enqueue_all(job, {
      {list_file("p", 1, 50), 0, "50 URLs enqueued in job prefix"},
      {list_file("p", 1, 30), 0, "0 URLs enqueued in job prefix in %S+ s %(the first 30 " ..
        "were in it already%)"},
      {list_file("p", 1, 80), 0, "30 URLs enqueued in job prefix"},
      {list_file("p", 1, 50), 0, "0 URLs enqueued in job prefix in %S+ s %(the first 50 " ..
        "were"},
      {list_file("p", 1, 30), 0, "0 URLs enqueued in job prefix in %S+ s %(the first 30 " ..
        "were"},
      -- past the list's first 50 (its head), the job knows only its last URL
      {list_file("p", 1, 60), 1, "job prefix has 80 URLs of a list that starts as this " ..
        "one, but this one has 60"},
      {list_file("p", 1, 60, "x", 61, 90), 1, "job prefix has 80 URLs of a list that " ..
        "starts as this one, but its URL 80 is " .. srv.url .. "/x80, not " .. srv.url ..
        "/p80: another list, not added"},
      -- the start of a list of more than 100 URLs
      {list_file("q", 1, 250), 0, "250 URLs enqueued in job prefix"},
      {list_file("q", 1, 30), 0, "0 URLs enqueued in job prefix in %S+ s %(the first 30 " ..
        "were"},
    })
    local list, times = stream_of(r, job)
    assert.equal(80 + 250, #list)
    for i = 1, 80 do assert.equal(1, times[("%s/p%d"):format(srv.url, i)]) end
    for i = 1, 250 do assert.equal(1, times[("%s/q%d"):format(srv.url, i)]) end
  end)

  it("short lists grow each on its own; one that differs in its start is another", function()
    local job = "lists"
    enqueue_all(job, {
      {list_file("a", 1, 20), 0, "20 URLs enqueued in job lists"},
      {list_file("b", 1, 30), 0, "30 URLs enqueued in job lists"},
      {list_file("a", 1, 60), 0, "40 URLs enqueued in job lists"},
      {list_file("b", 1, 45), 0, "15 URLs enqueued in job lists"},
      {list_file("a", 1, 150), 0, "90 URLs enqueued in job lists"},
      {list_file("b", 1, 45), 0, "0 URLs enqueued in job lists"},
      -- the first 10 of list a, then others: another list, all of it added
      {list_file("a", 1, 10, "d", 11, 30), 0, "30 URLs enqueued in job lists"},
      {list_file("a", 1, 10, "d", 11, 40), 0, "10 URLs enqueued in job lists"},
    })
    local list, times = stream_of(r, job)
    assert.equal(150 + 45 + 40, #list)
    for i = 1, 150 do assert.equal(i <= 10 and 2 or 1, times[("%s/a%d"):format(srv.url, i)]) end
    for i = 1, 45 do assert.equal(1, times[("%s/b%d"):format(srv.url, i)]) end
    for i = 11, 40 do assert.equal(1, times[("%s/d%d"):format(srv.url, i)]) end
  end)

  it("--status shows, after the counts, each list: its head, shortened, and how many are in", function()
    local job = "status"
    enqueue_all(job, {
      {list_file("e", 1, 20), 0, "20 URLs enqueued"},
      {list_file("e", 1, 60), 0, "40 URLs enqueued"},
      {list_file("f", 1, 250), 0, "250 URLs enqueued"},
    })
    -- a list's head: the SHA-1 of its first URLs (100 at most), a line each
    local function head_of(prefix, n)
      local urls = {}
      for i = 1, n do urls[i] = ("%s/%s%d"):format(srv.url, prefix, i) end
      return r:call("EVAL", "return redis.sha1hex(ARGV[1])", 0, table.concat(urls, "\n"))
    end
    local out, rc = shell.sh(("%s --redis %s --job %s --status"):format(tool, server.url, job))
    assert.equal(0, rc, out)
    local counts, lists = out:match("^(job status\n.-  rate      %S+\n)(.*)$")
    assert.is_not_nil(counts, out)
    assert.matches("\n  enqueued  310\n", counts, 1, true)
    local shown = {}
    for line in lists:gmatch("[^\n]+") do shown[#shown + 1] = line end
    table.sort(shown)
    local want = {
      ("  list      %s  60 URLs, the last %s/e60"):format(head_of("e", 20):sub(1, 12), srv.url),
      ("  list      %s  250 URLs, the last %s/f250"):format(head_of("f", 100):sub(1, 12),
        srv.url),
    }
    table.sort(want)
    assert.same(want, shown)
  end)

  it("survives a Redis restart mid-job (data persisted): workers reconnect", function()
    local dir = shell.sh("mktemp -d"):match("^%s*(.-)%s*$")
    local args = "--appendonly yes --save ''"
    local own = rs.start{dir = dir, args = args}
    finally(function() -- also when an assertion fails
      rs.stop(own)
      shell.sh("rm -rf " .. dir)
    end)
    local job = "restart"
    local file = url_file(3000, "r")
    local _, rc, err = shell.finish(shell.bg(("%s --redis %s --job %s --enqueue %s")
      :format(tool, own.url, job, file)))
    os.remove(file)
    assert.equal(0, rc, err)
    local w = {}
    for i = 1, 2 do
      w[i] = worker(own.url, job, "-c 10 --batch 20 --claim-idle 1 --consumer r" .. i)
    end
    local c = corio.redis.connect(own.url)
    wait_until(function() return c:call("HLEN", "fetch:{restart}:results") >= 500 end, 60,
      "progress")
    c:close()
    rs.stop(own) -- SIGTERM: the append-only file is flushed
    corio.sleep(0.5)
    own = rs.start{port = own.port, dir = dir, args = args}
    for i = 1, 2 do
      local _, wrc, werr = shell.finish(w[i], 120)
      assert.equal(0, wrc, werr)
      assert.matches("outages", werr, 1, true)
    end
    local _, n = results_of(own.url, job)
    assert.equal(3000, n)
  end)

  it("stops with a clear error when Redis is out of memory; the job stays consistent", function()
    local own = rs.start{args = "--save '' --appendonly no --maxmemory 2mb " ..
      "--maxmemory-policy noeviction"}
    finally(function() rs.stop(own) end)
    local file = url_file(40000, "oom-padding-padding-padding-padding-")
    local _, rc, err = shell.finish(shell.bg(("%s --redis %s --job oom --enqueue %s")
      :format(tool, own.url, file)), 60)
    os.remove(file)
    assert.equal(1, rc, err)
    assert.matches("Redis is out of memory (maxmemory) and refused XADD", err, 1, true)
    local c = corio.redis.connect(own.url)
    local added = tonumber(err:match("after (%d+) URLs"))
    assert.is_true(added > 0 and added < 40000)
    assert.equal(added, c:call("XLEN", "fetch:{oom}:urls"))
    assert.equal(tostring(added), c:call("HGET", "fetch:{oom}:meta", "enqueued"))
    c:close()
    local out, src = shell.sh(("%s --redis %s --job oom --status"):format(tool, own.url))
    assert.equal(0, src, out)
    assert.matches("enqueued  " .. added .. "\n", out, 1, true)
  end)
end)
