-- The article's backend, on corio.serve: a slow API that falls over under
-- load.
--
--   local backend = require "backend"
--   local s <close> = backend.start{port = 0, latency = 1.0, capacity = 200}
--   print(s.url)     -- http://127.0.0.1:PORT
--
-- Routes:
--   /welcome   "Welcome" (text/plain) after `welcome_latency` seconds:
--              by default a tenth of `latency`, as the article's welcome
--              page took about 0.1 s; 0 answers at once
--   /api/...   waits `latency` seconds, then a small JSON document
--   anything else: 404
-- Past `capacity` requests in flight (any route) the server answers 502
-- at once, as the article's backend did beyond about 200 concurrent
-- requests.  start returns the corio.serve server: port, url, close(),
-- wait(), stats().
local corio = corio or require "corio"

local M = {}

local DEFAULTS = {host = "127.0.0.1", port = 0, latency = 1.0, capacity = 200,
                  welcome_latency = false}

local function check(opts)
  local o = {}
  for k, v in pairs(opts) do
    if DEFAULTS[k] == nil then
      error(("backend.start: unknown option '%s'"):format(tostring(k)), 3)
    end
    o[k] = v
  end
  for k, v in pairs(DEFAULTS) do
    if o[k] == nil then o[k] = v end
  end
  if type(o.latency) ~= "number" or o.latency < 0 or o.latency ~= o.latency then
    error("backend.start: option 'latency' must be a number of seconds >= 0", 3)
  end
  if o.welcome_latency == false then o.welcome_latency = o.latency / 10 end
  if type(o.welcome_latency) ~= "number" or o.welcome_latency < 0
      or o.welcome_latency ~= o.welcome_latency then
    error("backend.start: option 'welcome_latency' must be a number of seconds >= 0", 3)
  end
  if math.type(o.capacity) ~= "integer" or o.capacity < 1 then
    error("backend.start: option 'capacity' must be an integer >= 1", 3)
  end
  if math.type(o.port) ~= "integer" or o.port < 0 or o.port > 65535 then
    error("backend.start: option 'port' must be an integer from 0 to 65535", 3)
  end
  if type(o.host) ~= "string" then
    error("backend.start: option 'host' must be a string", 3)
  end
  return o
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ("\\u%04x"):format(c:byte())
  end) .. '"'
end

function M.start(opts)
  local o = check(opts or {})
  local served = 0
  local json = {["Content-Type"] = "application/json"}
  return corio.serve{
    host = o.host,
    port = o.port,
    max_inflight = o.capacity,
    overload_status = 502,
    handler = function(req)
      if req.path == "/welcome" then
        if o.welcome_latency > 0 then corio.sleep(o.welcome_latency) end
        return "Welcome\n"
      end
      if req.path == "/api" or req.path:sub(1, 5) == "/api/" then
        if o.latency > 0 then corio.sleep(o.latency) end
        served = served + 1
        return {
          status = 200,
          headers = json,
          body = ('{"path": %s, "query": %s, "latency": %g, "n": %d}\n'):format(
            json_string(req.path), json_string(req.query_string), o.latency,
            served),
        }
      end
      return {status = 404, body = "Not Found\n"}
    end,
  }
end

return M
