-- What the specs share: the executables under test, running a command
-- (in the foreground, or in the background while the loop keeps serving),
-- files, a free port, and the check that a call failed with a FetchError.
--   local shell = require "tests.lua.support.shell"
local M = {}

M.bin = os.getenv("CORIO_BIN") or "build/corio"
-- plain lua5.4; under the sanitizer build it needs the sanitizer preloaded
M.lua = os.getenv("CORIO_LUA") or "lua5.4"

-- Run cmd (stderr merged into stdout); return its output and exit status.
function M.sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = f:read("a")
  f:close()
  local rc = tonumber(out:match("rc=(%d+)\n$"))
  return out:gsub("rc=%d+\n$", ""), rc
end

-- Write text to a new temporary file; return its name.
function M.script(text)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

-- Start cmd in the background, its stdout, stderr and exit status going
-- to files; return a job {pid=, base=}.  Wait for it with M.finish, which
-- runs the loop (corio.sleep) meanwhile, so a server in the spec's own
-- process keeps serving it.
function M.bg(cmd)
  local base = os.tmpname()
  local f = assert(io.open(base .. ".sh", "w"))
  f:write(cmd, "\n")
  f:close()
  local p = assert(io.popen(("sh -c 'sh %s.sh > %s.out 2> %s.err; echo $? > %s.tmp; " ..
    "mv %s.tmp %s.rc' >/dev/null 2>&1 & echo $!"):format(base, base, base, base, base, base)))
  local pid = p:read("l")
  p:close()
  return {pid = pid, base = base}
end

-- The whole content of a file, or nil if it cannot be read.
local function slurp(name)
  local f = io.open(name, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.readfile = slurp

-- A loopback port nobody listens on right now (the kernel picks it).
function M.free_port()
  local out = M.sh([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
  return assert(tonumber(out), out)
end

-- Run the loop until pred() holds (at most 1000 turns of 1 ms), or raise.
function M.until_(pred)
  for _ = 1, 1000 do
    if pred() then return end
    corio.sleep(0.001)
  end
  error("condition not reached", 2)
end

-- Wait (at most 10 s) for every task of the list to be done.
function M.wait_all(ts)
  local _, pending = corio.wait(ts, {timeout = 10})
  assert(#pending == 0, #pending .. " tasks still pending after 10 s")
end

-- fn(...) must fail with a FetchError: return it.
function M.fetch_error(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected a FetchError")
  assert(type(err) == "table" and err.name == "FetchError", tostring(err))
  return err
end

-- Wait (at most `timeout` seconds, default 30) for a job; return its
-- stdout, exit status and stderr, and remove its files.
function M.finish(job, timeout)
  local deadline = corio.time() + (timeout or 30)
  local rc = slurp(job.base .. ".rc")
  while not rc do
    if corio.time() > deadline then
      os.execute("pkill -P " .. job.pid .. " 2>/dev/null; kill " .. job.pid .. " 2>/dev/null")
      error("background job timed out: " .. slurp(job.base .. ".sh"))
    end
    corio.sleep(0.01)
    rc = slurp(job.base .. ".rc")
  end
  local out, err = slurp(job.base .. ".out"), slurp(job.base .. ".err")
  for _, ext in ipairs{"", ".sh", ".out", ".err", ".rc"} do os.remove(job.base .. ext) end
  return out, tonumber(rc), err
end

return M
