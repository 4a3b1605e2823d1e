-- The hostile-input matrix of misuse_spec.lua, run in a child corio
-- process (`corio tests/lua/support/misuse.lua GROUP`), so that a crash,
-- a hang or a leak (the child runs under ASan in --sanitize) is the
-- child's, reported by the spec with the last call it started.
--
-- Every public function of the module (found by walking the module
-- table) and every method of every object is called with each hostile
-- value in each argument position (the others valid), and every option
-- of an option table with each hostile value.  Each call runs in a task
-- bounded by corio.wait_for.  A call must succeed, or raise an error
-- value with a kind, or a message that names the function, the option or
-- the argument ("bad argument #2 to 'sleep'", "corio.serve: option
-- 'port' ...", "cannot copy args[1]").  A call that is still waiting at the bound is cancelled:
-- that is fine for a call that waits by design (sleep, get, acquire),
-- and a hang otherwise.  Each bad outcome prints a line "BAD ..."; the
-- last line is "ok N calls".
local corio = require "corio"
local group = assert(arg[1], "usage: misuse.lua GROUP")
io.stdout:setvbuf("line")

-- {==================================================================
-- The hostile values
-- ===================================================================

local function hostile(what)
  return function(_, k) error("hostile " .. what .. " (" .. tostring(k) .. ")", 2) end
end
local throwing = setmetatable({}, {
  __index = hostile("__index"), __newindex = hostile("__newindex"),
  __len = hostile("__len"), __call = hostile("__call"),
  __tostring = function() error("hostile __tostring", 2) end,
})
local closed_file = io.tmpfile()
closed_file:close()

local VALUES = {
  {"nil", nil}, {"true", true}, {"false", false},
  {"NaN", 0 / 0}, {"inf", math.huge}, {"-inf", -math.huge},
  {"2^63", 2 ^ 63}, {"maxinteger", math.maxinteger},
  {"mininteger", math.mininteger}, {"-1", -1}, {"-0.5", -0.5}, {"0", 0},
  {"empty string", ""}, {"100 KB string", string.rep("x", 100 * 1024)},
  {"100 KB of CR LF NUL", string.rep("\r\n\0", 100 * 1024 // 3)},
  {"throwing table", throwing}, {"empty table", {}},
  {"function", function() end},
  {"coroutine", coroutine.create(function() end)},
  {"userdata (closed file)", closed_file},
  {"light userdata (json.null)", corio.json.null},
}
-- }==================================================================

-- {==================================================================
-- One call, bounded
-- ===================================================================

local calls, bad = 0, 0
local FUNCS -- what is called (below): paths of module functions
local WAIT_BOUND, HANG_BOUND = 0.2, 20

-- Is `e` an error that says where it comes from?  `names`: the short
-- names that may appear (function, method, option).
local function names_something(e, names)
  if type(e) == "table" and rawget(e, "kind") ~= nil then return true end
  if type(e) ~= "string" then return false end
  if e:find("hostile", 1, true) then return true end -- the caller's own
  if e:find("attempt to ", 1, true) or e:find("stack overflow", 1, true) then
    return false -- Lua's own complaint from inside corio: not a check
  end
  -- "corio.serve: ...", "cannot copy args[2]: ...", or a name in quotes
  -- ("bad argument #1 to 'sleep'", "option 'port'", "calling 'result' on
  -- bad self"); an internal helper's name in a "bad argument" does not count
  if e:find("corio%.[%w_]") or e:find("cannot copy [%w_]+%[") then return true end
  for _, n in ipairs(names) do
    if e:find("'" .. n .. "'", 1, true) or e:find(n .. ":", 1, true)
      or e:find(n .. "(", 1, true) then
      return true
    end
  end
  return false
end

local function show(e)
  if type(e) == "string" then return (("%q"):format(e:sub(1, 200)):gsub("\\\n", "\\n")) end
  local ok, s = pcall(tostring, e)
  return ok and s or type(e)
end

-- A call site as a script writes it, so that Lua's argument errors can
-- name the function as they would there: `corio.processes.map(...)`,
-- `o:result(...)` (a call through pcall(f, ...) would be named '?').
-- `how` is a module path ("processes.map"), or ":name" for a method
-- (args[1] is the object; ".name" when it is the hostile value: a call
-- with '.' instead of ':'), or a plain name for a function value (f).
local callers = {}
local function caller(how)
  if callers[how] then return callers[how] end
  local code
  if how:sub(1, 1) == "." then -- a method called with '.' and a bad self
    code = ("local f, args, n = ... local o = {%s = f} " ..
      "return table.pack(o.%s(table.unpack(args, 1, n)))"):format(how:sub(2), how:sub(2))
  elseif how:sub(1, 1) == ":" then
    code = ("local f, args, n = ... local o = args[1] " ..
      "return table.pack(o%s(table.unpack(args, 2, n)))"):format(how)
  elseif FUNCS[how] then
    code = ("local f, args, n = ... " ..
      "return table.pack(corio.%s(table.unpack(args, 1, n)))"):format(how)
  else
    code = ("local %s, args, n = ... " ..
      "return table.pack(%s(table.unpack(args, 1, n)))"):format(how, how)
  end
  callers[how] = assert(load(code, "=" .. how, "t", {corio = corio, table = table}))
  return callers[how]
end

-- Call fn with args[1..n] in a task, through `how` (see caller); judge
-- the outcome.
local function try(label, names, waits, fn, args, n, how)
  calls = calls + 1
  print("call " .. label)
  local call = caller(how)
  local t = corio.spawn(function()
    return pcall(call, fn, args, n)
  end)
  local ok, pok, e = pcall(corio.wait_for, t, waits and WAIT_BOUND or HANG_BOUND)
  local verdict
  if not ok then
    if pok == corio.TimeoutError then
      if not waits then verdict = "hang: still running after " .. HANG_BOUND .. " s" end
    else
      verdict = "the task failed outside the call: " .. show(pok)
    end
  elseif not pok and not names_something(e, names) then
    verdict = "an error that names nothing: " .. show(e)
  end
  if verdict then
    bad = bad + 1
    print("BAD " .. label .. ": " .. verdict)
  end
end

-- Every position of a call: the receiver (for a method), then each
-- argument 1..#valid+1, each with every hostile value.
local function matrix(label, names, waits, fn, valid, how)
  local n = valid.n or #valid
  for pos = 1, n + 1 do
    for _, hv in ipairs(VALUES) do
      local args = table.move(valid, 1, n, 1, {})
      args[pos] = hv[2]
      try(("%s arg %d = %s"):format(label, pos, hv[1]), names, waits, fn, args,
        math.max(n, pos), pos == 1 and how:sub(1, 1) == ":" and "." .. how:sub(2) or how)
    end
  end
end

-- Every option of the option table at `pos`, with every hostile value.
local function options(label, names, waits, fn, valid, pos, opts, how)
  for _, o in ipairs(opts) do
    for _, hv in ipairs(VALUES) do
      local args = table.move(valid, 1, valid.n or #valid, 1, {})
      local t = {}
      for k, v in pairs(args[pos] or {}) do t[k] = v end
      t[o] = hv[2]
      args[pos] = t
      try(("%s option %s = %s"):format(label, o, hv[1]), {o, table.unpack(names)},
        waits, fn, args, math.max(valid.n or #valid, pos), how)
    end
  end
end
-- }==================================================================

-- {==================================================================
-- What is called, and with what valid arguments
-- ===================================================================

local srv_captured, release_handler = {}, corio.event()
local srv = corio.serve{port = 0, handler = function(req)
  if req.path == "/hold" then
    srv_captured.req = req
    release_handler:wait()
  end
  return {status = 200, body = "hello"}
end}
local URL = srv.url .. "/"
local REFUSED = "http://127.0.0.1:1/" -- nothing listens: refused at once
local function noop() end
local function fast() return 1 end

-- Module functions: path -> {valid args, waits, option position, options}
local FETCH_OPTS = {"method", "headers", "body", "json", "form", "timeout",
  "connect_timeout", "follow_redirects", "max_body", "verify_tls",
  "http_version", "proxy", "session", "retries", "params", "output", "stream"}
local MAP_OPTS = {"concurrency", "progress", "return_exceptions", "retries", "label"}
FUNCS = {
  as_completed = {args = function() return {{corio.spawn(fast)}, {}} end, opt = 2, opts = {"timeout"}},
  async = {args = function() return {fast} end},
  await = {args = function() return {corio.spawn(fast)} end},
  create_task = {args = function() return {fast} end},
  current_task = {args = function() return {} end},
  ensure_future = {args = function() return {corio.spawn(fast)} end},
  event = {args = function() return {} end},
  fetch = {args = function() return {URL, {}} end, opt = 2, opts = FETCH_OPTS},
  future = {args = function() return {} end},
  gather = {args = function() return {corio.spawn(fast)} end},
  get = {args = function() return {URL, {}} end, opt = 2, opts = FETCH_OPTS},
  get_event_loop = {args = function() return {} end},
  imap = {args = function() return {fast, {1, 2}, {}} end, opt = 3, opts = MAP_OPTS},
  lock = {args = function() return {} end},
  map = {args = function() return {fast, {1, 2}, {}} end, opt = 3, opts = MAP_OPTS},
  post = {args = function() return {URL, {}} end, opt = 2, opts = FETCH_OPTS},
  progress = {args = function() return {3, {}} end, opt = 2, opts = {"label"}},
  queue = {args = function() return {2} end},
  run = {args = function() return {fast} end},
  semaphore = {args = function() return {2} end},
  serve = {args = function() return {{port = 0, handler = fast}} end, opt = 1,
    opts = {"host", "handler", "port", "backlog", "overload_status", "max_inflight",
      "max_connections", "max_requests_per_conn", "max_header_bytes",
      "max_body_bytes", "header_timeout", "body_timeout", "idle_timeout",
      "write_timeout"}},
  session = {args = function() return {{}} end, opt = 1,
    opts = {"max_connections", "max_per_host", "max_idle", "headers", "timeout",
      "base_url", "retries", "rate"}},
  set_task_budget = {args = function() return {} end},
  sleep = {args = function() return {0, "v"} end, waits = true},
  spawn = {args = function() return {fast} end},
  stats = {args = function() return {} end},
  task_group = {args = function() return {function(g) g:spawn(fast) end} end},
  time = {args = function() return {} end},
  timeout = {args = function() return {1, fast} end, waits = true},
  to_thread = {args = function() return {fast} end},
  version = {args = function() return {} end},
  wait = {args = function() return {{corio.spawn(fast)}, {}} end, opt = 2,
    opts = {"return_when", "timeout"}},
  wait_for = {args = function() return {corio.spawn(fast), 1} end, waits = true},
  ["blocking.fetch"] = {args = function() return {REFUSED, {}} end, opt = 2, opts = FETCH_OPTS},
  ["blocking.get"] = {args = function() return {REFUSED, {}} end, opt = 2, opts = FETCH_OPTS},
  ["blocking.post"] = {args = function() return {REFUSED, {}} end, opt = 2, opts = FETCH_OPTS},
  ["json.decode"] = {args = function() return {"[1]"} end},
  ["json.encode"] = {args = function() return {{1}} end},
  ["processes.map"] = {args = function() return {fast, {1}, {}} end, opt = 3,
    opts = {"processes", "timeout", "executable"}},
  ["threads.map"] = {args = function() return {fast, {1}, {}} end, opt = 3,
    opts = {"threads", "timeout"}},
  ["url.decode"] = {args = function() return {"a%20b"} end},
  ["url.encode"] = {args = function() return {"a b"} end},
  ["url.join"] = {args = function() return {URL, "x"} end},
  ["url.parse"] = {args = function() return {URL} end},
  all_tasks = {args = function() return {} end},
  dump_tasks = {args = function() return {"/dev/null"} end},
  get_debug = {args = function() return {} end},
  set_debug = {args = function() return {false} end},
  trace_start = {args = function() return {"/dev/null"} end},
  trace_stop = {args = function() return {} end},
  timeline = {args = function() return {"/dev/null", "/dev/null"} end},
  ["redis.connect"] = {args = function() return {"redis://127.0.0.1:1", {timeout = 0.2}} end,
    opt = 2, opts = {"timeout"}, waits = true},
}

-- Objects: kind -> {make = function returning the object, waits = {method = true}}
-- Each method gets a fresh object.
local held_sem = corio.semaphore(1)
local OBJECTS = {
  task = {make = function() return corio.spawn(function() corio.sleep(0.01) return 1 end) end,
    waits = {await = true}},
  done_task = {make = function() local t = corio.spawn(fast); corio.sleep(0); return t end},
  future = {make = corio.future, waits = {await = true}},
  coroutine_object = {make = function() return corio.async(fast)() end},
  session = {make = function() return corio.session{} end, args = {fetch = {URL}, get = {URL}, post = {URL}}},
  response = {make = function() return corio.fetch(URL) end},
  streamed_response = {make = function() return corio.fetch(URL, {stream = true}) end},
  headers = {make = function() return corio.fetch(URL).headers end},
  server = {make = function() return corio.serve{port = 0, handler = fast} end,
    waits = {wait = true}},
  loop = {make = corio.get_event_loop, waits = {run_until_complete = true}},
  queue = {make = function() return corio.queue(2) end,
    waits = {get = true, put = true, join = true}},
  full_queue = {make = function() local q = corio.queue(1); q:put(1); return q end,
    waits = {get = true, put = true, join = true}},
  semaphore = {make = function() return corio.semaphore(2) end, waits = {acquire = true}},
  lock = {make = corio.lock, waits = {acquire = true}},
  guard = {make = function() return corio.semaphore(1):acquire() end},
  event = {make = corio.event, waits = {wait = true}},
  progress_bar = {make = function() return corio.progress(3, {label = "misuse"}) end},
}

-- Method names of an object: its metatable's __index table, or for the
-- objects that compute fields, the list the docs give.
local KNOWN_METHODS = {
  response = {"text", "json", "chunks", "close"},
  streamed_response = {"text", "json", "chunks", "close"},
  server = {"close", "wait", "stats"},
  coroutine_object = {},
  headers = {},
}
local function methods(kind, o)
  if KNOWN_METHODS[kind] then return KNOWN_METHODS[kind] end
  local list, seen = {}, {}
  local function add(t)
    for k, v in pairs(t) do
      if type(k) == "string" and type(v) == "function" and not k:find("^__") and not seen[k] then
        seen[k] = true
        list[#list + 1] = k
      end
    end
  end
  if type(o) == "table" then add(o) end
  local mt = getmetatable(o)
  if type(mt) == "table" and type(mt.__index) == "table" then add(mt.__index) end
  table.sort(list)
  return list
end
-- }==================================================================

-- {==================================================================
-- The groups
-- ===================================================================

-- Every function reachable from the module table, by path.
local function module_functions()
  local list = {}
  local function walk(t, prefix, depth)
    for k, v in pairs(t) do
      if type(k) == "string" then
        if type(v) == "function" then
          list[#list + 1] = prefix .. k
        elseif type(v) == "table" and depth < 2 and getmetatable(v) == nil then
          walk(v, prefix .. k .. ".", depth + 1)
        end
      end
    end
  end
  walk(corio, "", 0)
  table.sort(list)
  return list
end

local function lookup(path)
  local v = corio
  for part in path:gmatch("[^.]+") do v = v[part] end
  return v
end

local groups = {}

-- Each public function, with the valid arguments listed above.
function groups.functions()
  for _, path in ipairs(module_functions()) do
    local f = FUNCS[path]
    if not f then
      -- a function added since: hostile values alone, no valid arguments
      -- (list it in FUNCS to have it called with valid ones around them)
      print("NOTE corio." .. path .. ": not in FUNCS, called with hostile values only")
      FUNCS[path] = {args = function() return {} end}
      f = FUNCS[path]
    end
    local short = path:match("[^.]+$")
    matrix("corio." .. path, {short}, f.waits, lookup(path), f.args(), path)
  end
end

function groups.options()
  for _, path in ipairs(module_functions()) do
    local f = FUNCS[path]
    if f and f.opts then
      local short = path:match("[^.]+$")
      options("corio." .. path, {short}, f.waits, lookup(path), f.args(), f.opt, f.opts,
        path)
    end
  end
end

local function object_methods(kinds)
  for _, kind in ipairs(kinds) do
    local spec = OBJECTS[kind]
    for _, m in ipairs(methods(kind, spec.make())) do
      local o = spec.make()
      local f = o[m]
      local valid = {o, table.unpack(spec.args and spec.args[m] or {})}
      matrix(kind .. ":" .. m, {m}, spec.waits and spec.waits[m], f, valid, ":" .. m)
    end
  end
end

function groups.objects_core()
  object_methods{"task", "done_task", "future", "coroutine_object", "loop", "queue",
    "full_queue", "semaphore", "lock", "guard", "event", "progress_bar"}
  -- a task group's methods, called while its function runs
  corio.task_group(function(g)
    for _, m in ipairs(methods("group", g)) do
      matrix("task_group:" .. m, {m}, false, g[m], {g, fast}, ":" .. m)
    end
  end)
  -- the as_completed and imap iterators, called directly
  local it = corio.as_completed({corio.spawn(fast), corio.spawn(fast)})
  matrix("as_completed iterator", {"as_completed"}, true, it, {}, "as_completed")
  local f, s, c = corio.imap(fast, {1, 2, 3})
  matrix("imap iterator", {"imap"}, true, f, {s, c}, "imap")
end

function groups.objects_http()
  object_methods{"session", "response", "streamed_response", "headers", "server"}
  -- a request's fields and methods, while its handler waits
  local held = corio.spawn(corio.fetch, srv.url .. "/hold")
  while not srv_captured.req do corio.sleep(0.01) end
  for _, m in ipairs(methods("request", srv_captured.req)) do
    matrix("request:" .. m, {m}, false, srv_captured.req[m], {srv_captured.req}, ":" .. m)
  end
  release_handler:set()
  held:await()
end
-- }==================================================================

local run = assert(groups[group], "no group " .. group)
run()
srv:close()
held_sem = nil
print(("ok %d calls"):format(calls))
os.exit(bad == 0 and 0 or 1, true)
