-- The README's recipes, run as a user runs them: each block marked
-- `<!-- recipe: NAME -->` is written to a file and run by the corio
-- executable against corio.serve servers in this process (shell.finish
-- keeps this loop serving while a recipe runs).
local corio = require "corio"
local shell = require "tests.lua.support.shell"

local here = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "./"
local readme = assert(io.open(here .. "../../README.md")):read("a")

local function recipe(name)
  local code = readme:match("<!%-%- recipe: " .. name .. " %-%->\n```lua\n(.-)\n```")
  assert(code, "README.md has no recipe " .. name)
  return shell.script(code .. "\n")
end

-- A small site: pages linking to each other, to a missing page and to
-- another host; a user and order API; a big file.
local BIG = 3 * 1024 * 1024 + 17
local served = {}
local srv = corio.serve{port = 0, handler = function(req)
  served[req.path] = (served[req.path] or 0) + 1
  local n = tonumber(req.path:match("^/page/(%d+)$"))
  if n then return n % 10 == 0 and {status = 404} or "page " .. n end
  local p = req.path:match("^/site/(%w*)$")
  if p then
    local links = {
      [""] = '<a href="a">a</a> <a href="/site/b">b</a> <a href="http://localhost:1/x">out</a>',
      a = '<a href="b">b</a> <a href="./c">c</a> <a href="/site/">home</a>',
      b = '<a href="c#top">c</a> <a href="gone">gone</a>',
      c = '<a href="/site/a?x=1">a again</a>',
    }
    if links[p] then return {headers = {["content-type"] = "text/html"}, body = links[p]} end
    return {status = 404, body = "no such page"}
  end
  if req.path == "/users" then return {json = {id = req.query.id, name = "Ada"}} end
  if req.path == "/orders" then
    if req.query.user == "down" then return {status = 503} end
    return {json = {{id = 1, user = req.query.user}}}
  end
  if req.path == "/big" then return string.rep("x", BIG) end
  return {status = 404}
end}

describe("README recipes", function()
  teardown(function() srv:close(0.1) end)

  it("fetch_job counts a thousand statuses", function()
    local file = recipe("fetch_job")
    local out, rc, err = shell.finish(shell.bg(shell.bin .. " " .. file .. " " .. srv.url))
    os.remove(file)
    assert.equal(0, rc, err)
    assert.matches("200\t900\n", out)
    assert.matches("404\t100\n", out)
  end)

  it("crawler fetches every page of the host once and stops", function()
    served = {}
    local file = recipe("crawler")
    local out, rc, err = shell.finish(shell.bg(shell.bin .. " " .. file .. " " .. srv.url .. "/site/"))
    os.remove(file)
    assert.equal(0, rc, err)
    -- /site/, a, b, c and a?x=1 answer 200; gone is a 404
    assert.equal("crawled 5 pages\n", out)
    -- each once (/site/a twice: with and without ?x=1), the other host never
    assert.same({["/site/"] = 1, ["/site/a"] = 2, ["/site/b"] = 1,
      ["/site/c"] = 1, ["/site/gone"] = 1}, served)
  end)

  it("gateway answers from two upstreams, 502 when one fails, and stops on SIGTERM", function()
    local file = recipe("gateway")
    local port_file = os.tmpname()
    local job = shell.bg(("%s %s %s/users %s/orders 0 > %s & pid=$!; echo $pid > %s.pid; wait $pid")
      :format(shell.bin, file, srv.url, srv.url, port_file, port_file))
    local url
    for _ = 1, 500 do
      local f = io.open(port_file)
      url = f and f:read("a"):match("listening on (%S+)")
      if f then f:close() end
      if url then break end
      corio.sleep(0.01)
    end
    assert.truthy(url, "the gateway did not start")
    local r = corio.get(url .. "/?id=7")
    assert.equal(200, r.status)
    assert.same({user = {id = "7", name = "Ada"}, orders = {{id = 1, user = "7"}}}, r:json())
    r = corio.get(url .. "/?id=down")
    assert.equal(502, r.status)
    local pid = assert(io.open(port_file .. ".pid")):read("l")
    os.execute("kill -TERM " .. pid)
    local _, rc, err = shell.finish(job)
    os.remove(file)
    os.remove(port_file)
    os.remove(port_file .. ".pid")
    assert.equal(143, rc, err)
  end)

  it("download writes the body to a file as it arrives", function()
    local file = recipe("download")
    local target = os.tmpname()
    local out, rc, err = shell.finish(shell.bg(("%s %s %s/big %s"):format(shell.bin, file, srv.url, target)))
    os.remove(file)
    assert.equal(0, rc, err)
    assert.equal(("%s: %d bytes\n"):format(target, BIG), out)
    local f = assert(io.open(target, "rb"))
    local size = f:seek("end")
    f:close()
    os.remove(target)
    assert.equal(BIG, size)
    assert.matches("download .*3,145,745/3,145,745 100%%", err)
  end)
end)
