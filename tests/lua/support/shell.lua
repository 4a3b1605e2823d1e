-- What the specs share for driving programs from a shell: the executables
-- under test and a way to run a command and get its output and status.
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

return M
