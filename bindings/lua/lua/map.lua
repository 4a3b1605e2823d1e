-- map.lua: corio.map and corio.imap, a fetch job's worker pool in one call.
--
-- A job runs `concurrency` worker tasks; each pulls the next item, calls
-- fn(item, i) under pcall, stores the outcome and pulls again, as
-- bench/fetch.lua's hand-written loop does.  So a call runs in a task of
-- its own (never in the caller's), at most `concurrency` at once, and an
-- item costs no task, closure or table of its own: on 100,000 small
-- fetches a task per item would cost a coroutine each.
--
-- Stopping (the first error without return_exceptions, the caller
-- cancelled, an imap loop left early) sets `stopping` and cancels the
-- workers; a worker whose call then fails leaves quietly.  The caller
-- always waits until every worker has finished before it returns or
-- raises, as a task group does: no call outlives the job.
--
-- imap hands results over in completion order through a queue of three
-- arrays.  A worker pulls an item only while fewer than 2 x concurrency
-- items are pulled and not yet handed to the loop: memory follows the
-- concurrency, not the item count, even when the loop body is slower than
-- the calls.  A worker that finds that budget spent leaves; the loop spawns
-- workers again as it takes results.
local corio, internal = ...

local spawn, wait, await, sleep = corio.spawn, corio.wait, corio.await, corio.sleep
local future, current_task = corio.future, corio.current_task
local iserror, raise, bad = internal.iserror, internal.raise, internal.bad_option
local new_bar, update = internal.progress.new, internal.progress.update
local pcall, error, type, pairs, setmetatable, tostring =
  pcall, error, type, pairs, setmetatable, tostring
local random, min, mtype = math.random, math.min, math.type

local NAMES = {concurrency = true, progress = true, return_exceptions = true,
               retries = true, label = true}
local RETRY_NAMES = {attempts = true, backoff = true, max_backoff = true}
local TICK = 1 -- seconds between the ticker's redraw checks

local function nonneg_number(fname, name, v, default)
  if v == nil then return default end
  if mtype(v) == nil or v < 0 or v ~= v then
    bad(fname, name, "a non-negative number", v)
  end
  return v
end

-- retries = n (n + 1 tries) or {attempts=, backoff=, max_backoff=}, as on
-- fetch: exponential backoff from `backoff` seconds, capped, full jitter.
local function retry_options(fname, r)
  if r == nil then return 1, 0.5, 30 end
  if type(r) == "table" then
    for k in pairs(r) do
      if not RETRY_NAMES[k] then raise("%s: unknown option 'retries.%s'", fname, tostring(k)) end
    end
    return internal.positive_integer(fname, "retries.attempts", r.attempts, 1),
      nonneg_number(fname, "retries.backoff", r.backoff, 0.5),
      nonneg_number(fname, "retries.max_backoff", r.max_backoff, 30)
  end
  if mtype(r) == "float" and r == r // 1 and r >= 0 and r < 2 ^ 31 then
    r = math.tointeger(r)
  end
  if mtype(r) ~= "integer" or r < 0 then
    bad(fname, "retries", "a non-negative integer or a table", r)
  end
  return r + 1, 0.5, 30
end

-- Wait for the tasks even if this task is cancelled again meanwhile; give
-- up only when waiting is impossible here (a done callback, a closing
-- coroutine): the tasks are cancelled and end on their own.
local function wait_all(tasks)
  while true do
    local ok, err = pcall(wait, tasks)
    if ok or not iserror(err, "CancelledError") then return end
  end
end

local function wake(f)
  if f ~= nil and not f:done() then f:set_result(true) end
end

-- The job behind both calls.  `queued` is false for map (results stored
-- in input order) and true for imap (results queued in completion order).
-- Returns a function that runs the job and returns its results (map) or
-- returns the for-in values (imap); the job's state lives in its upvalues.
local function job(fname, fn, items, opts, queued)
  if type(fn) ~= "function" then
    raise("%s: fn must be a function (got %s)", fname, type(fn))
  end
  local itype = type(items)
  if itype ~= "table" and itype ~= "function" then
    raise("%s: items must be a table or an iterator function (got %s)",
      fname, itype)
  end
  opts = internal.options(fname, opts, NAMES)
  local c = internal.positive_integer(fname, "concurrency", opts.concurrency, 100)
  local rex = internal.boolean(fname, "return_exceptions", opts.return_exceptions, false)
  local progress = internal.boolean(fname, "progress", opts.progress, nil)
  local attempts, backoff, max_backoff = retry_options(fname, opts.retries)
  local label = opts.label
  if label ~= nil and type(label) ~= "string" then bad(fname, "label", "a string", label) end

  local n = itype == "table" and #items or nil -- nil: an iterator
  if progress == nil then progress = internal.isatty(2) end
  local bar = progress and new_bar(fname, n, label) or nil

  local pulled, exhausted, stopping, failure = 0, false, false, nil
  local results = {}                      -- map
  local budget = 2 * c                    -- imap: pulled, not handed over
  local consumed = 0
  local qi, qr, qe, qhead, qtail = {}, {}, {}, 1, 0
  local signal                            -- imap: the loop waits on it
  local tasks, live = {}, 0               -- the workers (a set for imap)
  local ticker

  local function stop(err)
    if stopping then return end
    stopping = true
    if failure == nil then failure = err end
    local me = current_task()
    for t in pairs(tasks) do
      if t ~= me and not t:done() then t:cancel() end
    end
    if ticker then ticker:cancel() end
    wake(signal)
  end

  -- a call failed with err: try again while tries are left
  local function retry(item, i, err)
    for a = 2, attempts do
      local ok = pcall(sleep, random() * min(max_backoff, backoff * 2 ^ (a - 2)))
      if not ok or stopping then return false, err end
      local good, r = pcall(fn, item, i)
      if good then return true, r end
      if stopping or iserror(r, "CancelledError") then return false, r end
      err = r
    end
    return false, err
  end

  local function worker()
    while not stopping do
      local i, item
      if queued and pulled - consumed >= budget then break end
      if n then
        i = pulled + 1
        if i > n then break end
        pulled, item = i, items[i]
      else
        if exhausted then break end
        local ok, v = pcall(items)
        if not ok then
          if not stopping then stop(v) end -- the input failed: the job does
          break
        end
        if v == nil then exhausted = true; break end
        pulled = pulled + 1
        i, item = pulled, v
      end
      local ok, r = pcall(fn, item, i)
      if not ok then
        if stopping then break end -- cancelled by the job: leave
        if attempts > 1 and not iserror(r, "CancelledError") then
          ok, r = retry(item, i, r)
          if stopping then break end
        end
      end
      if ok then
        if queued then
          qtail = qtail + 1
          qi[qtail], qr[qtail] = i, r
          wake(signal)
        else
          results[i] = r
        end
        if bar then update(bar, 1) end
      elseif rex then
        if queued then
          qtail = qtail + 1
          qi[qtail], qe[qtail] = i, r
          wake(signal)
        else
          results[i] = r
        end
        if bar then update(bar, 1, 1) end
      else
        -- a cancel from outside (Ctrl-C cancels every task) ends the job
        -- but is no item's outcome
        if bar and not iserror(r, "CancelledError") then update(bar, 1, 1) end
        stop(r)
        break
      end
    end
  end

  local function tick()
    while live > 0 and not stopping do
      sleep(TICK)
      bar:tick()
    end
  end

  local function on_worker_done(t)
    tasks[t] = nil
    live = live - 1
    wake(signal)
  end

  local function spawn_workers(k)
    for _ = 1, k do
      local t = spawn(worker)
      tasks[t] = true
      live = live + 1
      if queued then t:add_done_callback(on_worker_done) end
    end
    if bar and (ticker == nil or ticker:done()) then ticker = spawn(tick) end
  end

  -- cancel what is in flight, wait for it, close the bar (idempotent)
  local closed = false
  local function close()
    if closed then return end
    closed = true
    stop(nil)
    local pending, k = {}, 0
    for t in pairs(tasks) do
      if not t:done() then k = k + 1; pending[k] = t end
    end
    if ticker and not ticker:done() then k = k + 1; pending[k] = ticker end
    if k > 0 then wait_all(pending) end
    if bar then bar:close() end
  end

  if not queued then -- map
    return function()
      local k = n and min(c, n) or c
      if k == 0 then
        if bar then bar:close() end
        results.n = 0
        return results
      end
      spawn_workers(k)
      local ws, j = {}, 0
      for t in pairs(tasks) do j = j + 1; ws[j] = t end
      local ok, err = pcall(wait, ws)
      if ok then
        if ticker then ticker:cancel(); wait_all({ticker}) end
        closed = true
        if bar then bar:close() end
      else
        if failure == nil then failure = err end
        close()
      end
      if failure ~= nil then error(failure, 0) end
      results.n = n or pulled
      return results
    end
  end

  -- imap: the for-in iterator and its to-be-closed value
  local function next_result()
    while true do
      if qhead <= qtail then
        local i, r, e = qi[qhead], qr[qhead], qe[qhead]
        qi[qhead], qr[qhead], qe[qhead] = nil, nil, nil
        qhead = qhead + 1
        if qhead > qtail then qhead, qtail = 1, 0 end
        consumed = consumed + 1
        if live < c and not stopping and not (exhausted or (n and pulled >= n))
            and pulled - consumed < budget then
          spawn_workers(1)
        end
        return i, r, e
      end
      if closed then return nil end
      if failure ~= nil then
        close()
        error(failure, 0)
      end
      if live == 0 then
        if exhausted or (n and pulled >= n) or stopping then
          close()
          return nil
        end
        local k = min(c, budget - (pulled - consumed))
        if n then k = min(k, n - pulled) end
        spawn_workers(k)
      end
      signal = future()
      local ok, err = pcall(await, signal)
      signal = nil
      if not ok then
        if failure == nil then failure = err end
        close()
        error(err, 0)
      end
    end
  end
  local closer = setmetatable({}, {__close = close})
  return function()
    return next_result, nil, nil, closer
  end
end

-- corio.map(fn, items [, opts]) -> {fn(item, i)'s first result, ...; n = count}
function corio.map(fn, items, opts)
  return job("corio.map", fn, items, opts, false)()
end

-- corio.imap(fn, items [, opts]) -> for-in iterator of i, result, err
function corio.imap(fn, items, opts)
  return job("corio.imap", fn, items, opts, true)()
end
