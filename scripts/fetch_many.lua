-- fetch_many.lua: fetch every URL of a list, N at a time; one JSON line per
-- URL, progress and a summary on stderr.  The ready tool of corio's fetch
-- jobs (README, "Fetch jobs"):
--
--   corio scripts/fetch_many.lua [FILE|-] [-c N] [-o OUT.jsonl] [--retries N]
--     [--rate N] [--timeout S] [--method M] [-H "Name: value"]...
--
-- A job shared by many workers, on many machines, through Redis (see
-- scripts/lib/fetch_jobs.lua and docs/scale-out.md):
--
--   corio scripts/fetch_many.lua --redis URL --job NAME --enqueue FILE
--   corio scripts/fetch_many.lua --redis URL --job NAME --work [-c N] ...
--   corio scripts/fetch_many.lua --redis URL --job NAME --status
--   corio scripts/fetch_many.lua --redis URL --job NAME --results FILE
--
-- Input: one URL a line (blank lines and lines starting with # skipped),
-- read lazily, so a list of millions costs what `-c` costs.  Output, in
-- completion order: {"url":..., "status":200, "bytes":..., "ms":...,
-- "attempts":1} or {"url":..., "error":"timeout", "message":..., ...}.
-- A malformed line is an invalid_url result, never a crash.  Exit status 0
-- when every URL got a response (whatever its status), 1 when some failed
-- with an error, 2 on bad arguments; Ctrl-C keeps every line written so far
-- whole, prints the summary and exits 130.
local cjson = require "cjson"

local USAGE = [[
usage: corio scripts/fetch_many.lua [FILE|-] [options]
  FILE | -          the URLs, one a line (default: standard input)
  -c N              fetches at once (default 100)
  -o OUT.jsonl      where the JSON lines go (default: standard output)
  --retries N       retries on connect/reset/timeout errors and 429/5xx
  --rate N          at most N requests a second to any one host
  --timeout S       total timeout of one try, in seconds (default 300)
  --method M        HTTP method (default GET)
  -H "Name: value"  a request header (repeatable)
  --progress, --no-progress
                    force the progress bar on or off (default: on when
                    stderr is a terminal)
A job shared through Redis (delivery at least once, one result per URL):
  --redis URL       redis://[:password@]host:port/db
  --job NAME        the job (letters, digits and . _ - :)
  --enqueue FILE|-  add the URLs of FILE to the job.  Safe to run again: a
                    list is known by its first 100 URLs, and the job keeps
                    how many of it are in, so a rerun (after a crash, a
                    lost connection) adds only the rest, and a list that
                    grew only its new lines.  Another list is added after
                    the ones in the job; a list that starts as one in the
                    job but differs further on is refused (use another
                    --job)
  --work            fetch the job's URLs until none is left (the fetch
                    options above apply); run any number of workers
  --follow          with --work: wait for more URLs instead of exiting
  --claim-idle S    take over the URLs another worker has held for S
                    seconds without a result (default 60)
  --batch N         entries read (or added) at once (default 100)
  --status          print done, failed, pending, waiting and the rate,
                    then each list enqueued and how many of it are in
  --results FILE|-  write the job's JSON lines to FILE
]]

local function usage_error(fmt, ...)
  io.stderr:write("fetch_many: ", fmt:format(...), "\n", USAGE)
  os.exit(2)
end

local function number_arg(name, v, integer)
  local n = tonumber(v)
  if n == nil or n <= 0 or (integer and n ~= math.floor(n)) then
    usage_error("%s expects a positive %s (got %s)", name,
      integer and "integer" or "number", tostring(v))
  end
  return integer and math.tointeger(n) or n
end

local function parse_args(args)
  local o = {input = "-", concurrency = 100, headers = {}, method = "GET",
    claim_idle = 60, batch = 100, redis_wait = 120}
  local modes = 0
  local i, positional = 1, 0
  local function value(name)
    i = i + 1
    if args[i] == nil then usage_error("%s expects a value", name) end
    return args[i]
  end
  while args[i] ~= nil do
    local a = args[i]
    if a == "-h" or a == "--help" then
      io.stdout:write(USAGE)
      os.exit(0)
    elseif a == "-c" then o.concurrency = number_arg(a, value(a), true)
    elseif a == "-o" then o.output = value(a)
    elseif a == "--retries" then
      o.retries = tonumber(value(a))
      if o.retries == nil or o.retries < 0 or o.retries % 1 ~= 0 then
        usage_error("--retries expects an integer >= 0 (got %s)", args[i])
      end
      o.retries = math.tointeger(o.retries)
    elseif a == "--rate" then o.rate = number_arg(a, value(a), false)
    elseif a == "--timeout" then o.timeout = number_arg(a, value(a), false)
    elseif a == "--method" then o.method = value(a):upper()
    elseif a == "-H" then
      local name, v = value(a):match("^%s*([^:%s]+)%s*:%s*(.-)%s*$")
      if name == nil then
        usage_error("-H expects \"Name: value\" (got %q)", args[i])
      end
      o.headers[name] = v
    elseif a == "--redis" then o.redis = value(a)
    elseif a == "--job" then o.job = value(a)
    elseif a == "--enqueue" then o.enqueue, modes = value(a), modes + 1
    elseif a == "--work" then o.work, modes = true, modes + 1
    elseif a == "--status" then o.status, modes = true, modes + 1
    elseif a == "--results" then o.results, modes = value(a), modes + 1
    elseif a == "--follow" then o.follow = true
    elseif a == "--consumer" then o.consumer = value(a)
    elseif a == "--claim-idle" then o.claim_idle = number_arg(a, value(a), false)
    elseif a == "--batch" then o.batch = number_arg(a, value(a), true)
    elseif a == "--redis-wait" then o.redis_wait = number_arg(a, value(a), false)
    elseif a == "--progress" then o.progress = true
    elseif a == "--no-progress" then o.progress = false
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      usage_error("unknown option %s", a)
    else
      positional = positional + 1
      if positional > 1 then usage_error("one input file only (got %s)", a) end
      o.input = a
    end
    i = i + 1
  end
  if (o.redis == nil) ~= (o.job == nil) then
    usage_error("--redis and --job go together")
  end
  if o.redis ~= nil and modes ~= 1 then
    usage_error("with --redis, give one of --enqueue, --work, --status, --results")
  end
  if o.redis == nil and modes > 0 then
    usage_error("--enqueue, --work, --status and --results need --redis and --job")
  end
  return o
end

-- The URLs of the input, lazily: blank and comment lines skipped.
local function urls(input)
  local next_line = input:lines()
  return function()
    for line in next_line do
      local url = line:match("^%s*(.-)%s*$")
      if url ~= "" and url:sub(1, 1) ~= "#" then return url end
    end
    return nil
  end
end

-- Latencies in a histogram of 1% wide buckets (from 1 us): the summary's
-- percentiles cost a few kilobytes whatever the number of URLs.
local Latency = {}
Latency.__index = Latency
local STEP = math.log(1.01)

local function bucket_of(ms)
  local us = ms * 1000
  return us < 1 and 0 or math.floor(math.log(us) / STEP) + 1
end

local function bucket_ms(b) -- the bucket's middle
  return b == 0 and 0 or math.exp((b - 0.5) * STEP) / 1000
end

function Latency.new() return setmetatable({n = 0, counts = {}}, Latency) end

function Latency:add(ms)
  local b = bucket_of(ms)
  self.counts[b] = (self.counts[b] or 0) + 1
  self.n = self.n + 1
end

function Latency:percentiles(ps)
  local keys, out = {}, {}
  for b in pairs(self.counts) do keys[#keys + 1] = b end
  table.sort(keys)
  local seen, k = 0, 1
  for _, b in ipairs(keys) do
    seen = seen + self.counts[b]
    while k <= #ps and seen >= ps[k] / 100 * self.n do
      out[k] = bucket_ms(b)
      k = k + 1
    end
  end
  return out
end

local function thousands(n)
  local s = tostring(math.floor(n + 0.5))
  local sign, digits = s:match("^(%-?)(%d+)$")
  local head = #digits % 3 == 0 and 3 or #digits % 3
  return sign .. digits:sub(1, head) .. digits:sub(head + 1):gsub("%d%d%d", ",%0")
end

local function human_bytes(n)
  local units = {"B", "KB", "MB", "GB", "TB"}
  local u = 1
  while n >= 1000 and u < #units do n, u = n / 1000, u + 1 end
  return u == 1 and ("%d B"):format(n) or ("%.1f %s"):format(n, units[u])
end

local function ms_text(ms)
  return ms < 10 and ("%.2f ms"):format(ms) or ms < 1000
    and ("%.0f ms"):format(ms) or ("%.2f s"):format(ms / 1000)
end

-- Lines like "200: 9,998  404: 2", most frequent first.
local function counts_line(counts)
  local keys = {}
  for k in pairs(counts) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if counts[a] ~= counts[b] then return counts[a] > counts[b] end
    return tostring(a) < tostring(b)
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = ("%s: %s"):format(k, thousands(counts[k]))
  end
  return table.concat(parts, "  ")
end

local function summary(stats, secs, interrupted)
  local w = io.stderr
  local done = stats.responses + stats.errors
  w:write(("fetch_many: %s URLs in %.2f s (%s/s), %s received%s\n"):format(
    thousands(done), secs, thousands(secs > 0 and done / secs or 0),
    human_bytes(stats.bytes), interrupted and ", interrupted" or ""))
  if stats.responses > 0 then
    w:write("  status  ", counts_line(stats.statuses), "\n")
  end
  if stats.errors > 0 then
    w:write("  errors  ", counts_line(stats.kinds), "\n")
  end
  if stats.latency.n > 0 then
    local p = stats.latency:percentiles({50, 90, 99})
    w:write(("  latency p50 %s  p90 %s  p99 %s\n"):format(ms_text(p[1]),
      ms_text(p[2]), ms_text(p[3])))
  end
end

-- The fetch of one URL, as fetch_many does it: the record of its JSON
-- line, returned for a response, raised for an error.
local function fetcher(o)
  local session = corio.session {
    retries = o.retries, rate = o.rate, timeout = o.timeout,
    headers = o.headers, max_idle = o.concurrency,
  }
  local fetch_opts = {method = o.method}
  local now = corio.time
  local Cancelled = corio.CancelledError
  local function fetch_one(url)
    local t0 = now()
    local ok, r = pcall(session.fetch, session, url, fetch_opts)
    local rec = {url = url, ms = math.floor((now() - t0) * 1e4 + 0.5) / 10}
    if ok then
      rec.status, rec.bytes, rec.attempts = r.status, #r.body, r.attempts
      return rec
    end
    if r == Cancelled then error(r, 0) end
    rec.error = type(r) == "table" and r.kind or "error"
    rec.message = type(r) == "table" and r.message or tostring(r)
    rec.attempts = type(r) == "table" and r.attempts or nil
    rec.bytes = 0
    error(rec, 0)
  end
  return fetch_one, session
end

local function new_stats()
  return {responses = 0, errors = 0, bytes = 0, statuses = {},
    kinds = {}, latency = Latency.new()}
end

local function count(stats, rec)
  if rec.error then
    stats.errors = stats.errors + 1
    stats.kinds[rec.error] = (stats.kinds[rec.error] or 0) + 1
  else
    stats.responses = stats.responses + 1
    stats.statuses[rec.status] = (stats.statuses[rec.status] or 0) + 1
    stats.bytes = stats.bytes + rec.bytes
    stats.latency:add(rec.ms)
  end
end

-- --redis: the job's side (scripts/lib/fetch_jobs.lua).
local function run_job(o)
  package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
  local jobs = require "fetch_jobs"
  jobs.urls = urls
  if not o.work then return jobs.run(o) end
  local fetch_one, session = fetcher(o)
  local stats, t0 = new_stats(), corio.time()
  local ok, rc = pcall(jobs.run, o, fetch_one, function(rec) count(stats, rec) end)
  session:close()
  summary(stats, corio.time() - t0, not ok)
  local done = stats.responses + stats.errors
  if jobs.stats and done > 0 then
    io.stderr:write(("  redis   %d commands, %d writes, %d connects, %d outages: " ..
      "%.2f commands and %.3f round trips per URL\n"):format(jobs.stats.commands,
      jobs.stats.writes, jobs.stats.connects, jobs.stats.outages,
      jobs.stats.commands / done, jobs.stats.writes / done))
  end
  if not ok then error(rc, 0) end
  return rc
end

local function main(args)
  local o = parse_args(args)
  if o.redis ~= nil then return run_job(o) end
  local input, out = io.stdin, io.stdout
  if o.input ~= "-" then
    local f, err = io.open(o.input, "r")
    if f == nil then usage_error("cannot read the input: %s", err) end
    input = f
  end
  if o.output ~= nil then
    local f, err = io.open(o.output, "w")
    if f == nil then usage_error("cannot write the output: %s", err) end
    out = f
  end

  -- One URL: the record of its JSON line, returned for a response, raised
  -- for an error (so that the progress bar counts it).
  local fetch_one, session = fetcher(o)
  local session_close <close> = session
  local now = corio.time
  local Cancelled = corio.CancelledError

  local stats = new_stats()
  local t0 = now()
  -- whole lines reach the file at least twice a second (tail -f, Ctrl-C)
  local flusher = corio.spawn(function()
    while true do
      corio.sleep(0.5)
      out:flush()
    end
  end)
  local ok, err = pcall(function()
    for _, rec, e in corio.imap(fetch_one, urls(input), {
        concurrency = o.concurrency, progress = o.progress,
        label = "fetch_many", return_exceptions = true}) do
      if e ~= nil then
        if type(e) ~= "table" or e.url == nil then error(e, 0) end -- cancel
        rec = e
      end
      out:write(cjson.encode(rec), "\n")
      count(stats, rec)
    end
  end)
  flusher:cancel()
  out:flush()
  summary(stats, now() - t0, not ok)
  if not ok and err ~= Cancelled then error(err, 0) end
  if not ok then return nil end -- Ctrl-C or SIGTERM: corio exits 130 or 143
  return stats.errors == 0 and 0 or 1
end

local status = main(arg)
if status ~= nil then os.exit(status, true) end
