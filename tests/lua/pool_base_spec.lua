-- What the two pools share (bindings/lua/src/pool/lpool.c) and their
-- options read through lopts: both refuse a job once the state's hub is
-- gone, and both read their options the one way.
local corio = require "corio"

local shell = require "tests.lua.support.shell"
local bin, sh = shell.bin, shell.sh

describe("the pools' common base", function()
  -- A finalizer that runs at lua_close after the pools' hubs are gone
  -- (the object is made before them, so it is finalized after them) must
  -- not start workers that no one would stop: processes.map started them.
  it("refuses a job from a finalizer once lua_close has stopped the hubs", function()
    local name = shell.script([[
      local corio = require "corio"
      local keep = setmetatable({}, {__gc = function()
        local ok, err = pcall(corio.processes.map, function(x) return x end, {1})
        io.stdout:write("P ", tostring(ok), " ", tostring(err), "\n")
        ok, err = pcall(corio.to_thread, function(x) return x end, 1)
        io.stdout:write("T ", tostring(ok), " ", tostring(err), "\n")
      end})
      print(corio.processes.map(function(x) return x * 2 end, {1, 2})[2])
      print(corio.to_thread(function(x) return x * 2 end, 3))
    ]])
    local out, rc = sh("timeout 60 " .. bin .. " " .. name)
    os.remove(name)
    assert.are.equal(0, rc)
    assert.are.equal("4\n6\nP false corio: the runtime is closing\n"
      .. "T false corio: the runtime is closing\n", out)
  end)

  it("refuses an executable with a NUL byte, naming the option", function()
    local ok, err = pcall(corio.processes.map, function() end, {1},
      {executable = "/bin/sh\0x"})
    assert.is_false(ok)
    assert.matches("corio.processes.map: option 'executable' must not contain a NUL byte",
      err, 1, true)
  end)

  it("takes an integral float for a count, as every option does", function()
    local r = corio.threads.map(function(x) return x + 1 end, {1, 2}, {threads = 2.0})
    assert.are.same({2, 3, n = 2}, r)
    r = corio.processes.map(function(x) return x + 1 end, {1, 2}, {processes = 2.0})
    assert.are.same({2, 3, n = 2}, r)
  end)

  it("names the item and the timeout the worker was held to", function()
    local ok, err = pcall(corio.processes.map, function(x)
      if x == 2 then while true do end end
      return x
    end, {1, 2}, {processes = 1, timeout = 0.25})
    assert.is_false(ok)
    assert.are.equal(2, err.index)
    assert.matches("item 2 ran past its timeout (0.25 s)", tostring(err), 1, true)
    assert.are.same({1, n = 2}, err.results)
  end)

  it("gives to_thread every result and map only the first", function()
    assert.are.same({1, 2, 3}, {corio.to_thread(function() return 1, 2, 3 end)})
    assert.are.same({1, 4, n = 2},
      corio.threads.map(function(x) return x * x, "more" end, {1, 2}))
  end)
end)
