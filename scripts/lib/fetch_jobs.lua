-- fetch_jobs.lua: fetch_many's jobs shared through Redis (--redis URL
-- --job NAME), so that any number of workers, on any machines, drain one
-- list of URLs and none is lost when a worker dies.
--
-- A job is a Redis stream with a consumer group; every key of job NAME
-- has the hash tag {NAME}, so that a Redis Cluster keeps a job on one
-- node (docs/scale-out.md):
--   fetch:{NAME}:urls      stream, one entry {url=...} per URL (XADD)
--                          group "workers": what is delivered, to whom,
--                          and not yet acknowledged (the PEL)
--   fetch:{NAME}:results   hash URL -> its JSON line: the one result per
--                          URL (a URL delivered twice writes it twice)
--   fetch:{NAME}:failed    set of the URLs whose result is an error
--   fetch:{NAME}:meta      hash: enqueued, started_ms, last_ms
--   fetch:{NAME}:inputs    hash: per list enqueued (its head HEAD), how
--                          many of its URLs are in (HEAD), and the last
--                          (HEAD:last) (ENQUEUE below)
--   fetch:{NAME}:prefixes  hash: the SHA-1 of the first j URLs of a head,
--                          for every j up to its size -> that head
--   fetch:{NAME}:short     set: the sizes of the heads of fewer than 100
--                          URLs (a list of fewer is hashed whole)
--
-- A worker reads entries in batches (XREADGROUP), fetches them (-c at
-- once), and for each writes the result and acknowledges the entry in one
-- server-side script (ACK below), so a worker that dies between the two
-- leaves the entry pending, never acknowledged without its result.  The
-- entries a dead worker left pending are taken over (XAUTOCLAIM) once
-- idle longer than --claim-idle: delivery is at least once, and the
-- result hash keeps one result per URL.  A worker exits once nothing is
-- left to read and nothing is pending anywhere, unless --follow.
local cjson = require "cjson"

local M = {}

local GROUP = "workers"

-- Write the result, mark failures, acknowledge: atomically, one command.
-- KEYS: urls, results, failed, meta; ARGV: id, url, json, failed, now_ms
local ACK = [[
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] == '1' then redis.call('SADD', KEYS[3], ARGV[2])
else redis.call('SREM', KEYS[3], ARGV[2]) end
redis.call('HSET', KEYS[4], 'last_ms', ARGV[5])
return redis.call('XACK', KEYS[1], 'workers', ARGV[1])
]]

local function keys_of(job)
  local p = "fetch:{" .. job .. "}:"
  return {urls = p .. "urls", results = p .. "results", failed = p .. "failed",
    meta = p .. "meta", inputs = p .. "inputs", prefixes = p .. "prefixes",
    short = p .. "short"}
end

local function now_ms() return math.floor(corio.time() * 1000) end

local function fail(fmt, ...)
  io.stderr:write("fetch_many: ", fmt:format(...), "\n")
  os.exit(1)
end

-- Errors worth waiting out: the server restarting, a network blip, a
-- resolver that fails for a while (the Redis client tells "dns" apart
-- from "connect" since it looks names up itself).
local TRANSIENT = {connect = true, dns = true, reset = true, timeout = true}

-- The client of one run: connects (a clear error if it cannot), and
-- retries a call that failed for a transient reason, with a growing
-- pause, for at most `patience` seconds of outage.
local function client(url, patience)
  local ok, r = pcall(corio.redis.connect, url, {timeout = 5})
  if not ok then
    if type(r) == "table" and r.kind == "invalid_url" then
      io.stderr:write("fetch_many: --redis: ", r.message, "\n")
      os.exit(2)
    end
    fail("cannot use Redis at %s: %s", url, tostring(type(r) == "table" and r.message or r))
  end
  local c = {r = r, outages = 0}
  function c.call(...)
    local pause, since = 0.05, nil
    while true do
      local ok2, res = pcall(r.call, r, ...)
      if ok2 then return res end
      if type(res) ~= "table" or not TRANSIENT[res.kind] then error(res, 0) end
      since = since or corio.time()
      if corio.time() - since > patience then
        fail("Redis at %s is unreachable for %.0f s: %s", url, patience, res.message)
      end
      if pause == 0.05 then c.outages = c.outages + 1 end
      corio.sleep(pause)
      pause = math.min(pause * 2, 1)
    end
  end
  return c
end

-- A Redis error reply as a message that says what to do.
local function explain(err, what)
  if type(err) ~= "table" then return tostring(err) end
  if err.code == "OOM" then
    return ("Redis is out of memory (maxmemory) and refused %s: %s"):format(what, err.message)
  end
  return ("Redis refused %s: %s"):format(what, err.message or tostring(err))
end

-- The stream entries of a reply ([[id, [field, value, ...]], ...]) as
-- {id=, url=}.
local function entries_of(list, out)
  for _, e in ipairs(list or {}) do
    local id, fields, url = e[1], e[2], nil
    if type(fields) == "table" then
      for i = 1, #fields - 1, 2 do
        if fields[i] == "url" then url = fields[i + 1] end
      end
    end
    out[#out + 1] = {id = id, url = url or ""}
  end
  return out
end

local function job_exists(c, k)
  if c.call("EXISTS", k.urls) == 0 then return false end
  local ok, groups = pcall(c.call, "XINFO", "GROUPS", k.urls)
  if not ok then return false end
  for _, g in ipairs(groups) do
    for i = 1, #g - 1, 2 do
      if g[i] == "name" and g[i + 1] == GROUP then return true end
    end
  end
  return false
end

-- {name = value} of a flat [name, value, ...] reply.
local function pairs_of(list)
  local t = {}
  for i = 1, #(list or {}) - 1, 2 do t[list[i]] = list[i + 1] end
  return t
end

-- }==================================================================

-- ENQUEUE.  Enqueueing is idempotent and resumable, because a lost
-- reply leaves the client unable to tell whether its batch went in, and
-- it sends it again.  A list is known by the SHA-1 of its first
-- HEAD_URLS URLs (all of them when fewer), its head; the inputs hash
-- keeps, per head, how many of the list's URLs are in the job (its
-- position) and the last of them.  Each batch carries the position of
-- its first URL and is added only past the recorded position, so a batch
-- sent again (a lost reply, a rerun) adds nothing twice, and a rerun
-- skips what is in and adds the rest.  A list with another head is
-- another segment of the job, added after the others.
--
-- A list of fewer than HEAD_URLS URLs is hashed whole, so its head
-- changes when its file grows: the grown list is found by hashing its
-- first URLs at the size of each short head of the job (the short set),
-- and continues that head's segment.  The prefixes hash maps every start
-- of a head to the head, so a list that is the start of one in the job
-- (the file before it grew) is not taken for a new one either.
local HEAD_URLS = 100

-- The list's head and what the job holds of it: {head, position, last}.
-- The head is the first of: the one that starts with all of this list's
-- first URLs (the same list, or one it is the start of); the longest
-- short head this list starts with (the list grew); this list's own, a
-- new segment, whose starts (and size, if short) are recorded for the
-- lists to come.
-- KEYS: inputs, prefixes, short; ARGV: HEAD_URLS, the list's first URLs
local BEGIN = [[
local n = #ARGV - 1
local function sha(j) return redis.sha1hex(table.concat(ARGV, '\n', 2, j + 1)) end
local own = sha(n)
local head = redis.call('HGET', KEYS[2], own)
if head and n < tonumber(ARGV[1])
    and tonumber(redis.call('HGET', KEYS[1], head) or '0') >= n then
  -- a short list that is the start of a head is known URL by URL: all of
  -- it is in, whatever was added after it (a longer one is checked past
  -- its head, by the last URL, and refused if shorter than the position)
  return {head, n, ARGV[n + 1]}
end
if not head then
  local sizes = redis.call('SMEMBERS', KEYS[3])
  table.sort(sizes, function(a, b) return tonumber(a) > tonumber(b) end)
  for _, size in ipairs(sizes) do
    local j = tonumber(size)
    if j < n then
      local h = sha(j)
      if redis.call('HGET', KEYS[2], h) == h then -- a head, not a prefix
        head = h
        break
      end
    end
  end
end
if not head then
  head = own
  redis.call('HSET', KEYS[2], own, own)
  -- a start two lists share stays the first one's: it is in through either
  for j = 1, n - 1 do redis.call('HSETNX', KEYS[2], sha(j), own) end
  if n < tonumber(ARGV[1]) then redis.call('SADD', KEYS[3], n) end
end
return {head, redis.call('HGET', KEYS[1], head) or '0',
  redis.call('HGET', KEYS[1], head .. ':last') or ''}
]]

-- Add what of a batch is past the list's recorded position, and count
-- it, in one script: {URLs added, the position now}; a position short
-- of the batch's is a gap (an earlier batch is not in yet), and adds
-- nothing.  Its first write is an XADD: Redis refuses a script at its
-- first write when out of memory, so the count in the meta hash, the
-- position and the stream's length never disagree.
-- KEYS: urls, meta, inputs; ARGV: head, position, the URLs
local ADD = [[
local at = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local from = tonumber(ARGV[2])
local upto = from + #ARGV - 2
if at < from or at >= upto then return {0, at} end
for i = at - from + 3, #ARGV do redis.call('XADD', KEYS[1], '*', 'url', ARGV[i]) end
redis.call('HSET', KEYS[3], ARGV[1], upto, ARGV[1] .. ':last', ARGV[#ARGV])
redis.call('HINCRBY', KEYS[2], 'enqueued', upto - at)
return {upto - at, upto}
]]

-- --enqueue FILE: the URLs in batches of --batch, each one script call
-- (XADDs), four batches in flight (pipelined), from where the job's
-- copy of the list ends.
local function enqueue(o, c, k, next_url)
  local ok, err = pcall(c.call, "XGROUP", "CREATE", k.urls, GROUP, "0", "MKSTREAM")
  if ok or (type(err) == "table" and err.code == "BUSYGROUP") then
    ok, err = pcall(c.call, "HSETNX", k.meta, "created_ms", now_ms())
  end
  if not ok then fail("%s", explain(err, "the job's creation")) end
  local t0 = corio.time()
  local first = {}
  for url in next_url do
    first[#first + 1] = url
    if #first == HEAD_URLS then break end
  end
  -- the list's URLs one by one, its head first (next_url goes on
  -- answering nil at the end of the input)
  local taken, nfirst = 0, #first -- URLs of the list taken so far
  local function take()
    local url
    if taken < nfirst then url = first[taken + 1] else url = next_url() end
    if url ~= nil then taken = taken + 1 end
    return url
  end
  local head, start = nil, 0
  if #first > 0 then
    local b = c.call("EVAL", BEGIN, 3, k.inputs, k.prefixes, k.short, HEAD_URLS,
      table.unpack(first))
    head, start = b[1], math.tointeger(tonumber(b[2]))
    local url
    for _ = 1, start do url = take() or url end
    if start > 0 and (taken < start or url ~= b[3]) then
      fail("--enqueue: job %s has %d URLs of a list that starts as this one, but " ..
        "%s: another list, not added; enqueue it into another job (--job)", o.job,
        start, taken < start and ("this one has %d"):format(taken)
        or ("its URL %d is %s, not %s"):format(start, url, b[3]))
    end
  end

  local sha = c.call("SCRIPT", "LOAD", ADD)
  local failure = nil
  local function batches()
    local b = {head, taken}
    for url in take do
      b[#b + 1] = url
      if #b - 2 == o.batch then return b end
    end
    return #b > 2 and b or nil
  end
  local function add_once(b)
    local ok2, r = pcall(c.call, "EVALSHA", sha, 3, k.urls, k.meta, k.inputs,
      table.unpack(b))
    if not ok2 and type(r) == "table" and r.code == "NOSCRIPT" then
      ok2, r = pcall(c.call, "EVAL", ADD, 3, k.urls, k.meta, k.inputs, table.unpack(b))
    end
    if not ok2 then error(r, 0) end
    return r[2]
  end
  -- until the list's position is past the batch: a gap means an earlier
  -- batch is being sent again (its reply was lost), so wait for it
  local function add(b)
    local deadline = corio.time() + o.redis_wait
    while failure == nil do
      local ok2, at = pcall(add_once, b)
      if not ok2 then
        failure = failure or at -- the first: the others may be cancels
      elseif at >= b[2] + #b - 2 then
        return
      elseif corio.time() > deadline then
        failure = ("the URLs before #%d did not arrive in %.0f s"):format(b[2] + 1,
          o.redis_wait)
      else
        corio.sleep(0.01)
      end
    end
  end
  for _ in corio.imap(add, batches, {concurrency = 4}) do
    if failure then break end
  end
  if failure then
    local ok2, at = pcall(c.call, "HGET", k.inputs, head)
    local added = ok2 and (tonumber(at) or 0) - start or 0
    fail("%s after %d URLs (those are in the job: run the same command again " ..
      "to add the rest)", explain(failure, "XADD"), added)
  end
  io.stderr:write(("fetch_many: %d URLs enqueued in job %s in %.2f s%s\n"):format(
    taken - start, o.job, corio.time() - t0,
    start > 0 and (" (the first %d were in it already)"):format(start) or ""))
  return 0
end

-- --status: one line per count, then the rate, then one line per list
-- enqueued (its head shortened, how many of its URLs are in, the last).
local function status(o, c, k)
  if not job_exists(c, k) then fail("no job %q at %s", o.job, o.redis) end
  local meta = pairs_of(c.call("HGETALL", k.meta))
  local done = c.call("HLEN", k.results)
  local failed = c.call("SCARD", k.failed)
  local pending, waiting, consumers = 0, 0, 0
  for _, g in ipairs(c.call("XINFO", "GROUPS", k.urls)) do
    local gi = pairs_of(g)
    if gi.name == GROUP then
      pending, consumers = gi.pending or 0, gi.consumers or 0
      waiting = gi.lag ~= corio.redis.null and gi.lag or 0
    end
  end
  local rate = 0
  local started, last = tonumber(meta.started_ms), tonumber(meta.last_ms)
  if started and last and last > started then rate = done / ((last - started) / 1000) end
  local w = io.stdout
  w:write(("job %s\n"):format(o.job))
  w:write(("  enqueued  %d\n"):format(tonumber(meta.enqueued) or 0))
  w:write(("  done      %d\n"):format(done))
  w:write(("  failed    %d\n"):format(failed))
  w:write(("  pending   %d\n"):format(pending)) -- delivered, not acknowledged
  w:write(("  waiting   %d\n"):format(waiting)) -- not delivered yet
  w:write(("  workers   %d\n"):format(consumers))
  w:write(("  rate      %.1f/s\n"):format(rate))
  local inputs = pairs_of(c.call("HGETALL", k.inputs))
  local heads = {}
  for field in pairs(inputs) do
    if not field:find(":", 1, true) then heads[#heads + 1] = field end
  end
  table.sort(heads)
  for _, head in ipairs(heads) do
    w:write(("  list      %s  %s URLs, the last %s\n"):format(head:sub(1, 12),
      inputs[head], inputs[head .. ":last"] or "?"))
  end
  return 0
end

-- --results FILE: the job's JSON lines (HSCAN, in no particular order).
local function results(o, c, k, path)
  if not job_exists(c, k) then fail("no job %q at %s", o.job, o.redis) end
  local out = io.stdout
  if path ~= "-" then
    local f, err = io.open(path, "w")
    if f == nil then fail("cannot write the results: %s", err) end
    out = f
  end
  local cursor, n = "0", 0
  repeat
    local page = c.call("HSCAN", k.results, cursor, "COUNT", 1000)
    cursor = page[1]
    for i = 2, #page[2], 2 do
      out:write(page[2][i], "\n")
      n = n + 1
    end
  until cursor == "0"
  if out ~= io.stdout then out:close() end
  io.stderr:write(("fetch_many: %d results of job %s\n"):format(n, o.job))
  return 0
end

-- --work: one worker.  `fetch_one(url)` returns the record or raises it
-- (fetch_many's); `stats` takes every record for the summary.
local function work(o, c, k, fetch_one, record)
  if not job_exists(c, k) then
    fail("no job %q at %s: enqueue URLs first (--enqueue FILE)", o.job, o.redis)
  end
  local consumer = o.consumer
  if consumer == nil then
    local h = io.open("/etc/hostname")
    local host = h and h:read("l") or "host"
    if h then h:close() end
    local p = io.open("/proc/self/stat")
    local pid = p and p:read("l"):match("^(%d+)") or tostring(math.random(1e9))
    if p then p:close() end
    consumer = ("%s-%s"):format(host, pid)
  end
  c.call("HSETNX", k.meta, "started_ms", now_ms())
  local sha = c.call("SCRIPT", "LOAD", ACK)
  local queue = corio.queue(o.batch * 2) -- entries read, not yet taken
  local inflight, fatal = 0, nil
  local claim_ms = math.floor(o.claim_idle * 1000)

  local function ack(e, rec)
    rec.worker = consumer
    local line = cjson.encode(rec)
    local args = {4, k.urls, k.results, k.failed, k.meta, e.id, e.url, line,
      rec.error and "1" or "0", now_ms()}
    local ok, err = pcall(c.call, "EVALSHA", sha, table.unpack(args))
    if not ok and type(err) == "table" and err.code == "NOSCRIPT" then
      ok, err = pcall(c.call, "EVAL", ACK, table.unpack(args)) -- Redis restarted
    end
    if not ok then error(err, 0) end
  end

  -- -c tasks: take an entry, fetch, write its result and acknowledge.
  -- After a fatal error (Redis out of memory) they only empty the queue:
  -- what they skip stays pending, for a worker that can write it.
  local function consume()
    while true do
      local e = queue:get()
      if e == false then return end
      if fatal == nil then
        local ok, rec = pcall(fetch_one, e.url)
        if not ok and (type(rec) ~= "table" or rec.url == nil) then error(rec, 0) end
        local ok2, err = pcall(ack, e, rec)
        if ok2 then
          record(rec)
        else
          fatal = fatal or explain(err, "the result of " .. e.url)
        end
      end
      inflight = inflight - 1
    end
  end
  local consumers = {}
  for i = 1, o.concurrency do consumers[i] = corio.spawn(consume) end

  -- the reader, on a connection of its own (a blocking XREADGROUP holds
  -- up the commands behind it): claim what dead workers left, read new
  -- entries, and decide when the job is drained
  local rd = client(o.redis, o.redis_wait)
  local cursor, last_claim = "0-0", -math.huge
  local ok, err = pcall(function()
    while fatal == nil do
      local got = {}
      if corio.time() - last_claim >= math.max(o.claim_idle / 2, 0.05) then
        local claimed = rd.call("XAUTOCLAIM", k.urls, GROUP, consumer, claim_ms,
          cursor, "COUNT", o.batch)
        cursor = claimed[1]
        entries_of(claimed[2], got)
        if cursor == "0-0" then last_claim = corio.time() end
      end
      if #got == 0 then
        local reply = rd.call("XREADGROUP", "GROUP", GROUP, consumer, "COUNT",
          o.batch, "BLOCK", o.follow and 1000 or 100, "STREAMS", k.urls, ">")
        if reply ~= nil then entries_of(reply[1][2], got) end
      end
      for _, e in ipairs(got) do
        inflight = inflight + 1
        queue:put(e)
      end
      if #got == 0 and not o.follow and inflight == 0 then
        -- drained when nothing is pending anywhere (others' entries are
        -- acknowledged by them, or claimed by us once idle long enough)
        local summary = rd.call("XPENDING", k.urls, GROUP)
        if summary[1] == 0 then break end
        corio.sleep(math.min(0.2, o.claim_idle / 4))
      end
    end
  end)
  local rstats = rd.r:stats()
  rd.r:close()
  for _ = 1, o.concurrency do queue:put(false) end
  corio.gather(consumers, {return_exceptions = true})
  local wstats = c.r:stats()
  M.stats = {commands = rstats.commands + wstats.commands,
    writes = rstats.writes + wstats.writes, connects = rstats.connects + wstats.connects,
    outages = c.outages + rd.outages}
  if not ok then
    if err == corio.CancelledError then error(err, 0) end
    fatal = fatal or explain(err, "a read")
  end
  if fatal then fail("%s", fatal) end
  return 0
end

-- Run the Redis side of fetch_many.  `o` is the parsed options.
function M.run(o, fetch_one, record)
  if not o.job:match("^[%w_.:%-]+$") or #o.job > 200 then
    io.stderr:write(("fetch_many: --job: a job name is letters, digits and . _ - : " ..
      "(got %q)\n"):format(o.job))
    os.exit(2)
  end
  local c = client(o.redis, o.redis_wait)
  local k = keys_of(o.job)
  local ok, rc = pcall(function()
    if o.enqueue then
      local input = io.stdin
      if o.enqueue ~= "-" then
        local f, err = io.open(o.enqueue, "r")
        if f == nil then fail("cannot read the input: %s", err) end
        input = f
      end
      return enqueue(o, c, k, M.urls(input))
    elseif o.status then
      return status(o, c, k)
    elseif o.results then
      return results(o, c, k, o.results)
    end
    return work(o, c, k, fetch_one, record)
  end)
  c.r:close()
  if not ok then
    if rc == corio.CancelledError then error(rc, 0) end
    fail("%s", explain(rc, "a command"))
  end
  return rc
end

return M
