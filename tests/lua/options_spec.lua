-- Option tables: every function that takes one refuses an unknown option
-- and a bad value with one message shape, naming the function and the
-- option; durations in seconds follow one rounding rule.
local corio = require "corio"

local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

-- nothing is sent: every mistake is raised before the request starts
local URL = "http://127.0.0.1:9/"

local function done_task()
  local t = corio.spawn(function() return 1 end)
  t:await()
  return t
end

describe("an unknown option is an error that names it", function()
  local cases = {
    {"corio.fetch", function(o) return corio.fetch(URL, o) end},
    {"corio.get", function(o) return corio.get(URL, o) end},
    {"corio.post", function(o) return corio.post(URL, o) end},
    {"corio.blocking.fetch", function(o) return corio.blocking.fetch(URL, o) end},
    {"corio.blocking.get", function(o) return corio.blocking.get(URL, o) end},
    {"corio.blocking.post", function(o) return corio.blocking.post(URL, o) end},
    {"corio.session", function(o) return corio.session(o) end},
    {"session:fetch", function(o) local s <close> = corio.session{} return s:fetch(URL, o) end},
    {"session:get", function(o) local s <close> = corio.session{} return s:get(URL, o) end},
    {"session:post", function(o) local s <close> = corio.session{} return s:post(URL, o) end},
    {"corio.serve", function(o) o.handler = function() end return corio.serve(o) end},
    {"corio.wait", function(o) return corio.wait({done_task()}, o) end},
    {"corio.gather", function(o) return corio.gather(done_task(), o) end},
    {"corio.as_completed", function(o) return corio.as_completed({done_task()}, o) end},
  }
  for _, c in ipairs(cases) do
    it(c[1], function()
      assert.matches(c[1] .. ": unknown option 'bogus'", err_of(c[2], {bogus = 1}), 1, true)
      assert.matches(c[1] .. ": option names are strings (got a number key)",
                     err_of(c[2], {[1] = 1}), 1, true)
    end)
  end

  it("corio.gather takes a trailing plain table as its options", function()
    assert.matches("corio.gather: unknown option 'return_exception'",
                   err_of(corio.gather, {done_task()}, {return_exception = true}), 1, true)
    assert.same({1, n = 1}, corio.gather({done_task()}, {return_exceptions = true}))
  end)
end)

describe("options that are not a table", function()
  for name, f in pairs{
    ["corio.fetch"] = function() return corio.fetch(URL, "x") end,
    ["corio.session"] = function() return corio.session("x") end,
    ["corio.wait"] = function() return corio.wait({}, "x") end,
    ["corio.as_completed"] = function() return corio.as_completed({}, "x") end,
    ["corio.serve"] = function() return corio.serve("x") end,
  } do
    it(name, function()
      assert.matches(name .. ": options must be a table, not a string", err_of(f), 1, true)
    end)
  end
end)

describe("a bad value names the function, the option and what it must be", function()
  local cases = {
    {corio.wait, {{}, {timeout = "soon"}}, "corio.wait: option 'timeout' must be a number of seconds >= 0 (got soon)"},
    {corio.wait, {{}, {timeout = -1}}, "corio.wait: option 'timeout' must be a number of seconds >= 0 (got -1)"},
    {corio.wait, {{}, {timeout = 0 / 0}}, "corio.wait: option 'timeout' must be a number of seconds >= 0"},
    {corio.wait, {{}, {return_when = 1}}, "corio.wait: option 'return_when' must be a string, not a number"},
    {corio.wait, {{}, {return_when = "SOMETIMES"}}, "corio.wait: option 'return_when' must be ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION (got 'SOMETIMES')"},
    {corio.as_completed, {{}, {timeout = false}}, "corio.as_completed: option 'timeout' must be a number of seconds >= 0 (got false)"},
    {corio.gather, {done_task(), {return_exceptions = 1}}, "corio.gather: option 'return_exceptions' must be a boolean, not a number"},
    {corio.session, {{max_idle = 1.5}}, "corio.session: option 'max_idle' must be an integer from 0 to"},
    {corio.session, {{timeout = 0}}, "corio.session: option 'timeout' must be a number of seconds > 0, or false for none (got 0)"},
    {corio.session, {{base_url = 1}}, "corio.session: option 'base_url' must be a string, not a number"},
    {corio.session, {{headers = "x"}}, "corio.session: option 'headers' must be a table, not a string"},
    {corio.fetch, {URL, {timeout = "soon"}}, "corio.fetch: option 'timeout' must be a number of seconds > 0, or false for none (got soon)"},
    {corio.fetch, {URL, {verify_tls = 1}}, "corio.fetch: option 'verify_tls' must be a boolean, not a number"},
    {corio.fetch, {URL, {proxy = "a\0b"}}, "corio.fetch: option 'proxy' must not contain a NUL byte"},
    {corio.fetch, {URL, {http_version = "3"}}, "corio.fetch: option 'http_version' must be 1.0, 1.1, 2 or 2-only (got '3')"},
    {corio.blocking.get, {URL, {max_body = -5}}, "corio.blocking.get: option 'max_body' must be a number of bytes > 0, or false for no limit (got -5)"},
    {corio.serve, {{handler = print, port = 1.5}}, "corio.serve: option 'port' must be an integer from 0 to 65535 (got 1.5)"},
    {corio.serve, {{handler = print, idle_timeout = 0}}, "corio.serve: option 'idle_timeout' must be a number of seconds > 0 (got 0)"},
    {corio.serve, {{handler = print, host = "127.0.0.1\0x"}}, "corio.serve: option 'host' must not contain a NUL byte"},
    {corio.wait, {{done_task(), 1}}, "corio.wait: item 2 must be a task, future, coroutine object or function (got number)"},
    {corio.gather, {done_task(), "x"}, "corio.gather: item 2 must be a task, future, coroutine object or function (got string)"},
    {corio.as_completed, {{{}}}, "corio.as_completed: item 1 must be a task, future, coroutine object or function (got table)"},
  }
  for i, c in ipairs(cases) do
    it(("case %d: %s"):format(i, c[3]), function()
      assert.matches(c[3], err_of(c[1], table.unpack(c[2])), 1, true)
    end)
  end
end)

describe("durations", function()
  it("a positive timeout below a millisecond still times out", function()
    local t = corio.spawn(corio.sleep, 100)
    local done, pending = corio.wait({t}, {timeout = 0.0001})
    assert.equal(0, #done)
    assert.equal(1, #pending)
    t:cancel()
  end)

  it("a duration too long to matter is clamped, not refused", function()
    local t = corio.spawn(corio.sleep, 1e12)
    local done = corio.wait({done_task()}, {timeout = 1e300})
    assert.equal(1, #done)
    corio.sleep(0)
    assert.is_false(t:done())
    t:cancel()
    assert.has_error(function() t:await() end)
    assert.is_true(t:cancelled())
  end)
end)
