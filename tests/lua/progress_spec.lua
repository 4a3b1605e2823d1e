-- The progress bar (corio.progress, and map's progress option) on stderr:
-- its line, plain lines when stderr is not a terminal, and redraws in
-- place under a pseudo-terminal (util-linux `script`), at most 10 a second.
-- Each case runs a script in a child corio process and reads its stderr.
local shell = require "tests.lua.support.shell"
local bin, sh, script = shell.bin, shell.sh, shell.script

-- run Lua text under corio with stderr piped; return stderr and stdout
local function piped(text)
  local name = script(text)
  local err = os.tmpname()
  local out, rc = sh(("{ timeout 60 %s %s 2>%s; }"):format(bin, name, err))
  local f = assert(io.open(err))
  local e = f:read("a")
  f:close()
  os.remove(name); os.remove(err)
  assert.equal(0, rc, out .. e)
  return e, out
end

-- run Lua text under corio on a pseudo-terminal; return what it showed
local function on_pty(text)
  local name = script(text)
  local out, rc = sh(("timeout 60 script -qec '%s %s' /dev/null </dev/null"):format(bin, name))
  os.remove(name)
  assert.equal(0, rc, out)
  return out
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

describe("progress, stderr not a terminal", function()
  it("prints one final line: label, bar, thousands, percent, rate, errors", function()
    local e = piped [[
      local b = corio.progress(5000, {label = "job"})
      b:update(1234, 3)
      b:update()
      b:close()
      b:close() -- once only
    ]]
    assert.matches("^job %[####%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%] 1,235/5,000 24%% [%d,]+/s in %d+%.%ds errors 3\n$", e)
  end)

  it("shows count, rate and errors when the total is unknown", function()
    local e = piped [[
      local b <close> = corio.progress(nil)
      b:update(1234567, 1000)
    ]]
    assert.matches("^1,234,567 [%d,]+/s in %d+%.%ds errors 1,000\n$", e)
    assert.not_matches("ETA", e)
    assert.not_matches("%[", e)
  end)

  it("is off for map unless asked (progress = nil or false), on with true", function()
    local e, out = piped [[
      local fn = function(x) if x == 2 then error("x") end return x end
      print(#corio.map(fn, {1, 3}))
      print(#corio.map(fn, {1, 3}, {progress = false}))
      local r = corio.map(fn, {1, 2, 3}, {progress = true, return_exceptions = true, label = "m"})
      print(r.n)
    ]]
    assert.equal("2\n2\n3\n", out)
    assert.matches("^m %[#+%] 3/3 100%% [%d,]+/s in %d+%.%ds errors 1\n$", e)
  end)

  it("prints a plain line every 5 seconds, a stalled job too", function()
    -- 60 calls: 59 over about 1.2 s, then 5 s stalled on the last one
    local e, out = piped [[
      local t0 = corio.time()
      local r = corio.map(function(d, i)
        corio.sleep(d)
        if i % 10 == 0 then error("bad") end
      end, (function()
        local t = {}
        for i = 1, 59 do t[i] = 0.04 end
        t[60] = 5
        return t
      end)(), {progress = true, return_exceptions = true, concurrency = 2})
      io.stdout:write(("elapsed=%.3f\n"):format(corio.time() - t0))
    ]]
    assert.not_matches("\r", e)
    local lines = {}
    for l in e:gmatch("[^\n]*\n") do lines[#lines + 1] = l end
    local elapsed = assert(tonumber(out:match("elapsed=([%d.]+)")), out)
    -- one line at 5 s (drawn by the ticker: nothing completes then), the final
    assert.is_true(#lines >= 2 and #lines <= math.floor(elapsed / 5) + 1, e)
    assert.matches("^%[#+%-*%] %d+/60 %d+%% [%d,]+/s ETA [%dms]+ errors %d+\n$", lines[1])
    assert.matches("^%[#+%] 60/60 100%% [%d,]+/s in %d+%.%ds errors 6\n$", lines[#lines])
  end)
end)

describe("progress on a terminal", function()
  it("redraws in place at most 10 times a second and ends on one line", function()
    local out = on_pty [[
      local t0 = corio.time() -- before the first draw: elapsed covers them all
      local b = corio.progress(100000, {label = "tty"})
      while corio.time() - t0 < 1 do corio.sleep(0.001); b:update(1) end
      b:close()
      io.stdout:write(("elapsed=%.3f\n"):format(corio.time() - t0))
    ]]
    local elapsed = assert(tonumber(out:match("elapsed=([%d.]+)")), out)
    local bar = out:gsub("elapsed=[%d.]+\r?\n", "")
    local draws = count(bar, "\r[^\r\n]*\27%[K")  -- each: \r, the line, clear
    assert.is_true(draws >= 3, bar)
    -- the first draw, one per 0.1 s, the final line
    assert.is_true(draws <= math.floor(elapsed * 10 + 0.01) + 2, draws .. " in " .. elapsed)
    assert.equal(1, count(bar, "\n"), bar)  -- the final line, and only it, ends
    assert.matches("\rtty %[[#-]+%] [%d,]+/100,000 %d+%% [%d,]+/s in %d+%.%ds errors 0\27%[K\r?\n$", bar)
    assert.matches("ETA", bar) -- the redraws
  end)

  it("is on for map by default when stderr is a terminal", function()
    local out = on_pty [[
      local r = corio.map(function(x) return x end, {1, 2, 3})
      io.stdout:write("n=", r.n, "\n")
    ]]
    assert.matches("\r%[#+%] 3/3 100%% [%d,]+/s in %d+%.%ds errors 0\27%[K\r?\n", out)
    assert.matches("n=3", out)
  end)
end)
