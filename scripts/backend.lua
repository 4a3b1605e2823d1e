-- The article's backend as a command: prints its URL (first line of
-- stdout), then serves until Ctrl-C (or SIGTERM).
--   corio scripts/backend.lua [--port N] [--latency S] [--capacity N]
--                             [--welcome-latency S] [--host H]
-- See scripts/lib/backend.lua for the routes.
local here = arg and arg[0] and arg[0]:match("^(.-)[^/]*$") or "./"
if here == "" then here = "./" end
package.path = here .. "lib/?.lua;" .. package.path
local backend = require "backend"

local USAGE = "usage: corio scripts/backend.lua [--port N] [--latency S] "
  .. "[--capacity N] [--welcome-latency S] [--host H]\n"

local function usage(msg)
  if msg then io.stderr:write("backend.lua: ", msg, "\n") end
  io.stderr:write(USAGE)
  os.exit(2)
end

local parse = {
  port = function(s)
    local v = math.tointeger(tonumber(s))
    return v and v >= 0 and v <= 65535 and v or nil
  end,
  latency = function(s)
    local v = tonumber(s)
    return v and v >= 0 and v == v and v or nil
  end,
  capacity = function(s)
    local v = math.tointeger(tonumber(s))
    return v and v >= 1 and v or nil
  end,
  host = function(s) return s ~= "" and s or nil end,
}
parse.welcome_latency = parse.latency

local opts, i = {}, 1
while arg[i] do
  local a = arg[i]
  if a == "-h" or a == "--help" then
    io.stdout:write(USAGE)
    os.exit(0)
  end
  local name = a:match("^%-%-([%w-]+)$")
  name = name and name:gsub("-", "_")
  if not name or not parse[name] then usage(("unknown option '%s'"):format(a)) end
  local v = arg[i + 1] and parse[name](arg[i + 1])
  if v == nil then
    usage(("option '%s' needs a valid value (got %s)"):format(a,
      arg[i + 1] and ("'" .. arg[i + 1] .. "'") or "nothing"))
  end
  opts[name] = v
  i = i + 2
end

local ok, server = pcall(backend.start, opts)
if not ok then
  io.stderr:write("backend.lua: ", tostring(server), "\n")
  os.exit(1)
end
print(server.url)
io.stdout:flush()
-- Ctrl-C cancels every task, this wait included, and closes the server
pcall(server.wait, server)
