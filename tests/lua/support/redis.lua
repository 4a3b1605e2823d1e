-- A real redis-server for the specs: started on a free loopback port,
-- stopped by PID.  Needs the corio module loaded (it waits with
-- corio.sleep, so servers of the spec's own process keep serving).
--   local rs = require "tests.lua.support.redis"
--   local server = rs.start()          -- {port=, url=, pid=, dir=}
--   rs.stop(server)                    -- SIGTERM, waits until it is gone
local M = {}

-- A port nobody listens on now: the one a corio.serve got from port 0.
function M.free_port()
  local s = corio.serve{port = 0, handler = function() return "" end}
  local port = s.port
  s:close(0)
  return port
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- Start redis-server (opts.port, opts.args: more arguments, opts.dir: its
-- working directory, for persistence) and wait until it answers PING.
function M.start(opts)
  opts = opts or {}
  local port = opts.port or M.free_port()
  local dir = opts.dir or "/tmp"
  local args = opts.args or "--save '' --appendonly no"
  local p = assert(io.popen(("cd %s && redis-server --port %d --bind 127.0.0.1 " ..
    "--daemonize no %s >/dev/null 2>&1 & echo $!"):format(dir, port, args)))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  local server = {port = port, pid = pid, dir = dir,
    url = ("redis://127.0.0.1:%d"):format(port)}
  local deadline = corio.time() + 10
  while true do
    local ok, r = pcall(corio.redis.connect, server.url, {timeout = 1})
    if ok then
      r:close()
      return server
    end
    if corio.time() > deadline or not alive(pid) then
      M.stop(server, "KILL")
      error("redis-server did not start on port " .. port .. ": " .. tostring(r))
    end
    corio.sleep(0.02)
  end
end

-- Stop it by PID (signal: "TERM" by default, "KILL" to kill it) and wait
-- until it is gone (at most 10 s).
function M.stop(server, signal)
  if not alive(server.pid) then return end -- stopped already
  os.execute(("kill -%s %d 2>/dev/null"):format(signal or "TERM", server.pid))
  local deadline = corio.time() + 10
  while alive(server.pid) and corio.time() < deadline do corio.sleep(0.02) end
  -- not our child (the shell's): it is reaped by init, not waited for
  assert(not alive(server.pid), "redis-server " .. server.pid .. " still runs")
end

return M
