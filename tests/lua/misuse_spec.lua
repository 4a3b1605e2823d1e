-- Hostile input across the Lua API (issue 17): every public function of
-- the module and every method of every object, called with each wrong
-- type (nil, booleans, NaN, +-inf, 2^63, negative numbers, empty and
-- 100 KB strings, a table whose __index throws, functions, coroutines,
-- userdata) in each argument position and in each option.  Each call
-- raises an error that names the function, option or argument, or
-- succeeds; none crashes, hangs or leaks (under --sanitize the child is
-- the ASan build, and LeakSanitizer fails its exit status).
--
-- The matrix is tests/lua/support/misuse.lua, run in a child corio
-- process per group (bounded by `timeout`); each call it makes is bounded
-- by corio.wait_for inside the child.
local shell = require "tests.lua.support.shell"

-- The child runs in a directory of its own: a hostile value that makes a
-- valid path (trace_start(-1) writes a file named "-1") lands there, not
-- in the checkout.
local function run_group(group)
  local here = os.getenv("PWD")
  local bin = shell.bin:find("^/") and shell.bin or here .. "/" .. shell.bin
  local dir = shell.sh("mktemp -d"):gsub("%s+$", "")
  local out, rc = shell.sh(("cd %s && timeout -k 10 900 %s %s/tests/lua/support/misuse.lua %s")
    :format(dir, bin, here, group))
  shell.sh("rm -rf " .. dir)
  local bad, last = {}, nil
  for line in out:gmatch("[^\n]+") do
    if line:find("^BAD ") then bad[#bad + 1] = line:sub(1, 400) end
    if line:find("^call ") then last = line end
  end
  local calls = tonumber(out:match("ok (%d+) calls"))
  if rc ~= 0 or #bad > 0 or not calls then
    error(("misuse group %s: exit %s, %d bad call(s), last call started: %s\n%s\n%s")
      :format(group, tostring(rc), #bad, tostring(last), table.concat(bad, "\n", 1, math.min(#bad, 40)),
        out:gsub("\ncall [^\n]*", ""):sub(-3000)), 0)
  end
  return calls
end

describe("hostile input across the Lua API", function()
  it("every public function, with each wrong type in each argument", function()
    assert.is_true(run_group("functions") > 1000)
  end)

  it("every option of every function taking an option table", function()
    assert.is_true(run_group("options") > 1000)
  end)

  it("methods of tasks, futures, coroutine objects, the loop, queues, " ..
     "semaphores, locks, guards, events, progress bars, task groups, iterators", function()
    assert.is_true(run_group("objects_core") > 1000)
  end)

  it("methods of sessions, responses (whole and streamed), headers, servers, requests", function()
    assert.is_true(run_group("objects_http") > 200)
  end)

  it("keeps internal entry points out of the module table", function()
    local corio = require "corio"
    assert.is_nil(corio.processes._worker)
    for k in pairs(corio) do assert.is_nil(tostring(k):match("^_[^V]"), k) end
    for _, sub in ipairs{"processes", "threads", "url", "json", "blocking"} do
      for k in pairs(corio[sub]) do assert.is_nil(tostring(k):match("^_"), sub .. "." .. k) end
    end
  end)
end)
