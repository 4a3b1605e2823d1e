-- scripts/fetch_many.lua, the ready tool, run as a user runs it: a child
-- process fetching from a corio.serve server in this process (the spec
-- waits with shell.finish, which keeps this loop serving).
local corio = require "corio"
local shell = require "tests.lua.support.shell"
local json = corio.json

local seen = {}
local srv = corio.serve{port = 0, handler = function(req)
  seen[req.path] = (seen[req.path] or 0) + 1
  if req.path == "/missing" then return {status = 404, body = "no"} end
  if req.path == "/flaky" and seen[req.path] == 1 then return {status = 503} end
  if req.path == "/slow" then corio.sleep(5) end
  if req.path == "/header" then
    return {status = req.headers["x-token"] == "s3cret" and 200 or 400}
  end
  return "hello"
end}
local tool = shell.bin .. " scripts/fetch_many.lua"

local function lines_of(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = json.decode(line) end
  return out
end

local function by_url(records)
  local t = {}
  for _, r in ipairs(records) do
    assert.is_nil(t[r.url], "one line per URL: " .. r.url)
    t[r.url] = r
  end
  return t
end

describe("scripts/fetch_many.lua", function()
  teardown(function() srv:close(0.1) end)

  it("writes one JSON line per URL, bad lines as results, and a summary", function()
    local input = shell.script(table.concat({
      "# a comment", "", srv.url .. "/a", "  " .. srv.url .. "/b  ",
      "not a url", "http://127.0.0.1:1/closed", srv.url .. "/missing", "ftp://x/",
    }, "\n") .. "\n")
    local out, rc, err = shell.finish(shell.bg(tool .. " " .. input .. " -c 3"))
    os.remove(input)
    assert.equal(1, rc, err) -- some URLs failed with an error
    local r = by_url(lines_of(out))
    local n = 0
    for _ in pairs(r) do n = n + 1 end
    assert.equal(6, n)
    assert.equal(200, r[srv.url .. "/a"].status)
    assert.equal(5, r[srv.url .. "/b"].bytes)
    assert.equal(1, r[srv.url .. "/b"].attempts)
    assert.is_number(r[srv.url .. "/b"].ms)
    assert.equal(404, r[srv.url .. "/missing"].status) -- a status is a result
    assert.equal("invalid_url", r["not a url"].error)
    assert.matches("Bad scheme", r["not a url"].message)
    assert.equal("connect", r["http://127.0.0.1:1/closed"].error)
    assert.equal("unsupported_scheme", r["ftp://x/"].error)
    assert.matches("fetch_many: 6 URLs in [%d.]+ s %([%d,]+/s%), 12 B received\n", err)
    assert.matches("\n  status  200: 2  404: 1\n", err)
    assert.matches("\n  errors  connect: 1  invalid_url: 1  unsupported_scheme: 1\n", err)
    assert.matches("\n  latency p50 [%d.]+ m?s  p90 [%d.]+ m?s  p99 [%d.]+ m?s\n", err)
  end)

  it("reads stdin, writes -o, retries, sends headers, exits 0 when all answered", function()
    local listing = os.tmpname()
    local input = {}
    for i = 1, 1500 do input[i] = srv.url .. "/n" .. i end
    input[#input + 1] = srv.url .. "/flaky"
    input[#input + 1] = srv.url .. "/header"
    local file = shell.script(table.concat(input, "\n"))
    local out, rc, err = shell.finish(shell.bg(("%s - -c 50 -o %s --retries 2 " ..
      "-H 'X-Token: s3cret' --timeout 10 < %s"):format(tool, listing, file)))
    os.remove(file)
    assert.equal(0, rc, err)
    assert.equal("", out)
    local f = assert(io.open(listing))
    local r = by_url(lines_of(f:read("a")))
    f:close()
    os.remove(listing)
    assert.equal(200, r[srv.url .. "/flaky"].status)
    assert.equal(2, r[srv.url .. "/flaky"].attempts)
    assert.equal(200, r[srv.url .. "/header"].status)
    assert.equal(200, r[srv.url .. "/n1500"].status)
    assert.matches("fetch_many: 1,502 URLs in ", err)
    assert.matches("status  200: 1,502\n", err)
  end)

  it("refuses bad arguments with exit status 2, naming them", function()
    for args, msg in pairs{["-c 0"] = "-c expects a positive integer (got 0)",
        ["--retries x"] = "--retries expects an integer >= 0 (got x)",
        ["--rate -1"] = "--rate expects a positive number (got -1)",
        ["--bogus"] = "unknown option --bogus",
        ["-H nocolon"] = "-H expects \"Name: value\" (got \"nocolon\")",
        ["/nonexistent/urls.txt"] = "cannot read the input: /nonexistent/urls.txt"} do
      local out, rc = shell.sh(tool .. " " .. args .. " < /dev/null")
      assert.equal(2, rc, args)
      assert.matches("fetch_many: " .. msg, out, 1, true)
      assert.matches("usage: corio scripts/fetch_many.lua", out, 1, true)
    end
  end)

  it("on Ctrl-C keeps every line written whole, prints the summary, exits 130", function()
    local input = {}
    for i = 1, 40 do input[i] = srv.url .. "/q" .. i end
    for i = 1, 20 do input[#input + 1] = srv.url .. "/slow" end
    local file = shell.script(table.concat(input, "\n"))
    local listing = os.tmpname()
    local job = shell.bg(("%s %s -c 10 -o %s & pid=$!; " ..
      "while [ $(wc -l < %s) -lt 40 ]; do sleep 0.05; done; kill -INT $pid; wait $pid")
      :format(tool, file, listing, listing))
    local _, rc, err = shell.finish(job)
    os.remove(file)
    assert.equal(130, rc, err)
    local f = assert(io.open(listing))
    local text = f:read("a")
    f:close()
    os.remove(listing)
    assert.equal("\n", text:sub(-1)) -- no half line
    assert.equal(40, #lines_of(text))
    assert.matches("fetch_many: 40 URLs in [%d.]+ s %([%d,]+/s%), 200 B received, interrupted\n", err)
  end)
end)
