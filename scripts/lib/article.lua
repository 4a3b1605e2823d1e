-- What every experiment script of the article shares: its options, the
-- backend it talks to, a clock, and the table it prints.
--
-- A script loads this with
--   package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
--   local article = require "article"
local M = {}

-- The article's slow endpoint (about a second per request, 502 when too
-- many arrive at once) and its fast one.
M.API_PATH = "/api/afk/pod?current=1&pageSize=100"
M.WELCOME_PATH = "/welcome"

local here = arg and arg[0] and arg[0]:match("^(.-)[^/]*$") or "./"
if here == "" then here = "./" end

-- name -> {metavar, help, parse}; a script accepts the ones it names.
local function posint(s) local v = math.tointeger(tonumber(s)) return v and v >= 1 and v or nil end
local function nonneg(s) local v = tonumber(s) return v and v >= 0 and v or nil end
local function str(s) return s ~= "" and s or nil end
local function intlist(s)
  local list = {}
  for item in s:gmatch("[^,]+") do
    local v = posint(item)
    if not v then return nil end
    list[#list + 1] = v
  end
  return #list > 0 and list or nil
end

local KNOWN = {
  url = {"URL", "base URL of a backend to use instead of the embedded one", str},
  n = {"N", "number of requests (or tasks)", posint},
  latency = {"S", "embedded backend: seconds each /api request takes", nonneg},
  capacity = {"N", "embedded backend: requests in flight before it answers 502", posint},
  sizes = {"N,N,...", "numbers of tasks to try, in order", intlist},
  workers = {"N", "thread pool size", posint},
  processes = {"N", "process pool size", posint},
  out = {"DIR", "where to write the chart", str},
}

local function usage(script, defaults, names)
  local parts = {"usage: corio " .. script}
  for _, name in ipairs(names) do
    parts[#parts + 1] = ("[--%s %s]"):format(name, KNOWN[name][1])
  end
  local lines = {table.concat(parts, " ")}
  for _, name in ipairs(names) do
    local d = defaults[name]
    if type(d) == "table" then d = table.concat(d, ",") end
    lines[#lines + 1] = ("  --%-10s %s%s"):format(name, KNOWN[name][2],
      d ~= nil and d ~= false and (" (default: %s)"):format(d) or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Parse the script's command line against `defaults` (option -> default
-- value; false means "none").  --help prints the usage; anything else it
-- does not know prints the usage line to stderr and exits 2.
function M.options(defaults)
  local script = (arg and arg[0] or "script.lua")
  local names = {}
  for name in pairs(defaults) do
    assert(KNOWN[name], "article.options: unknown option " .. name)
    names[#names + 1] = name
  end
  table.sort(names)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  local function fail(msg)
    io.stderr:write(script, ": ", msg, "\n", usage(script, defaults, names))
    os.exit(2)
  end
  local i = 1
  while arg and arg[i] do
    local a = arg[i]
    if a == "--help" or a == "-h" then
      io.write(usage(script, defaults, names))
      os.exit(0)
    end
    local name, value = a:match("^%-%-([%w_]+)=(.*)$")
    if not name then
      name = a:match("^%-%-([%w_]+)$")
      if not name then fail("unexpected argument '" .. a .. "'") end
      i = i + 1
      value = arg[i]
      if value == nil then fail("option --" .. name .. " needs a value") end
    end
    if defaults[name] == nil then fail("unknown option --" .. name) end
    local parsed = KNOWN[name][3](value)
    if parsed == nil then
      fail(("bad value '%s' for --%s (expected %s)"):format(value, name, KNOWN[name][1]))
    end
    o[name] = parsed
    i = i + 1
  end
  return o
end

-- Seconds since the script started, from a monotonic clock.  (The article
-- prints time.time(); an offset from the start reads better.)
local t0 = corio.time()
function M.clock() return corio.time() - t0 end

-- The backend the script talks to: the one at --url, or an embedded
-- `corio.serve` backend (scripts/backend.lua) started as a child process.
-- A child, not a server on this script's own loop, because several of the
-- article's lessons block this loop on purpose (requests.get inside a
-- coroutine): a server on the same loop could not answer them.
-- Use as `local backend <close> = article.backend(o)`; backend.url is the
-- base URL without a trailing slash.
local Backend = {}
Backend.__index = Backend
Backend.__close = function(self) self:stop() end

function Backend:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close() -- waits for the child to exit
    self.pid, self.pipe = nil, nil
  end
end

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function corio_exe()
  local exe = os.getenv("CORIO_BIN")
  if exe then return exe end
  -- arg[-1] is the interpreter running this script
  local i = -1
  while arg[i - 1] do i = i - 1 end
  return arg[i] or "corio"
end

function M.backend(o)
  if o.url then
    return setmetatable({url = (o.url:gsub("/+$", ""))}, Backend)
  end
  local cmd = ("echo $$; exec %s %s --port 0 --latency %s --capacity %d"):format(
    shell_quote(corio_exe()), shell_quote(here .. "backend.lua"),
    tostring(o.latency or 1), o.capacity or 200)
  local pipe = assert(io.popen(cmd, "r"))
  local pid = pipe:read("l")
  local url = pipe:read("l")
  if not (pid and pid:match("^%d+$") and url and url:match("^http://")) then
    pipe:close()
    error("could not start the embedded backend (" .. cmd .. ")")
  end
  return setmetatable({url = url:match("^(%S+)"):gsub("/+$", ""),
                       pid = pid, pipe = pipe}, Backend)
end

-- Print rows as an aligned table: columns is a list of {title, key, fmt}.
function M.print_table(columns, rows)
  local cells, widths = {}, {}
  for c, col in ipairs(columns) do widths[c] = #col[1] end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c, col in ipairs(columns) do
      local v = row[col[2]]
      local s = col[3] and v ~= nil and col[3]:format(v) or tostring(v == nil and "" or v)
      cells[r][c] = s
      if #s > widths[c] then widths[c] = #s end
    end
  end
  local function line(values)
    local out = {}
    for c, v in ipairs(values) do
      out[c] = c == 1 and ("%-" .. widths[c] .. "s"):format(v)
                      or ("%" .. widths[c] .. "s"):format(v)
    end
    print(table.concat(out, "  "))
  end
  local titles = {}
  for c, col in ipairs(columns) do titles[c] = col[1] end
  line(titles)
  for _, r in ipairs(cells) do line(r) end
end

-- Make `dir` (and its parents) if missing; return it.
function M.ensure_dir(dir)
  if not os.rename(dir, dir) then
    assert(os.execute("mkdir -p " .. shell_quote(dir)), "cannot create " .. dir)
  end
  return dir
end

return M
