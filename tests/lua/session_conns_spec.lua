-- The connections a session with max_connections opens, counted by the
-- server: corio.serve in this process, which sees each request's client
-- address (a new port is a new connection) and how many connections it
-- holds open while it answers.  Without max_idle, a session keeps as
-- many idle connections as its limit lets be open (the default session's
-- limit when it has none): libcurl's own default
-- (4 x the transfers in its multi) closed them as soon as fewer transfers
-- ran, and the next burst opened them again (bench/NOTES.md, "A session
-- limit").
local corio = require "corio"

local ports = {} -- client ports seen: one per connection
local nports = 0
local peak = 0 -- most connections open at once, sampled at each request
local srv
srv = corio.serve{port = 0, handler = function(req)
  local port = req.remote:match(":(%d+)$")
  if not ports[port] then
    ports[port] = true
    nports = nports + 1
  end
  peak = math.max(peak, srv:stats().connections)
  if req.path == "/hold" then corio.sleep(0.05) end
  return "ok"
end}
local url = srv.url:gsub("/$", "")

local function reset()
  ports, nports, peak = {}, 0, 0
end

-- n tasks at once, each making `each` requests of path one after another.
local function burst(s, n, each, path)
  local tasks = {}
  for i = 1, n do
    tasks[i] = corio.spawn(function()
      for _ = 1, each do assert.equal(200, s:get(url .. path).status) end
      return true
    end)
  end
  corio.wait(tasks, {timeout = 20})
  for _, t in ipairs(tasks) do assert.is_true(t:result()) end
end

describe("session connections", function()
  teardown(function() srv:close() end)

  it("max_connections keeps its connections across a quiet spell", function()
    local s <close> = corio.session{max_connections = 8}
    reset()
    burst(s, 8, 1, "/hold") -- 8 connections, all busy at once
    assert.equal(8, nports)
    burst(s, 1, 6, "/hello") -- one at a time: 7 of the 8 idle
    burst(s, 8, 1, "/hold") -- all 8 again
    assert.equal(8, nports) -- none closed and opened again
    assert.is_true(peak <= 8, peak)
  end)

  it("never holds more than max_connections open, 20 tasks behind 4", function()
    local s <close> = corio.session{max_connections = 4}
    reset()
    burst(s, 20, 3, "/hold")
    burst(s, 1, 5, "/hello")
    burst(s, 20, 2, "/hello")
    assert.is_true(peak <= 4, peak)
    assert.equal(4, peak) -- the limit was reached
    assert.equal(4, nports)
  end)

  for _, opts in ipairs({{}, {max_per_host = 8}, {rate = 1000}}) do
    local shape = next(opts) or "no option"
    it("a session without max_connections keeps them too (" .. shape .. ")", function()
      local s <close> = corio.session(opts)
      reset()
      burst(s, 8, 1, "/hold")
      burst(s, 1, 6, "/hello")
      burst(s, 8, 1, "/hold")
      assert.equal(8, nports)
    end)
  end

  it("an explicit max_idle still bounds the idle ones", function()
    local s <close> = corio.session{max_connections = 8, max_idle = 2}
    reset()
    burst(s, 8, 1, "/hold")
    burst(s, 8, 1, "/hold") -- 2 kept, 6 opened again
    assert.equal(14, nports)
    assert.is_true(peak <= 8, peak)
  end)
end)
