-- RFC 9112 request framing and the Host rules (issue 17): one table of
-- raw requests, sent byte for byte (tests/support/raw_http.py) to
-- corio.serve and to the test kit's private nginx (tests/support/nginx.sh,
-- stopped by PID), each answer checked against the table.  An answer is
-- the status codes received, in order, then "closed" (the server closed
-- the connection) or "open" (still open after 1.5 s of silence).  A
-- request for /smuggled hides in several rows: it must never reach the
-- handler.  docs/reliability.md shows this table; FRAMING_TABLE=FILE
-- writes it there as Markdown rows.
local corio = require "corio"
local shell = require "tests.lua.support.shell"
local sh, bg, finish = shell.sh, shell.bg, shell.finish

local here = debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "./"
local support = here .. "../support/"

local H = "Host: x\r\n"
local HIDDEN = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
local GET = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
local POST = "POST /echo HTTP/1.1\r\nHost: x\r\n"
local CHUNKED = POST .. "Transfer-Encoding: chunked\r\n\r\n"

-- name, bytes, corio's answer, nginx's answer (when it differs), and why
-- corio answers differently
local rows = {
  {"a plain GET (baseline)", GET, "200 open"},
  {"two pipelined GETs", GET .. GET, "200 200 open"},
  {"chunked body (baseline)", CHUNKED .. "5\r\nhello\r\n0\r\n\r\n" .. GET, "200 200 open"},
  {"space before the colon: `Content-Length : 37`",
    POST .. "Content-Length : 37\r\n\r\n" .. HIDDEN, "400 closed"},
  {"space before the colon: `Transfer-Encoding : chunked` beside Content-Length",
    POST .. "Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" .. HIDDEN, "400 closed"},
  {"space inside a header name", "GET /hello HTTP/1.1\r\nHost: x\r\nX Y: 1\r\n\r\n", "400 closed"},
  {"obs-fold line", "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", "400 closed"},
  {"obs-fold of a Content-Length value",
    POST .. "Content-Length:\r\n 37\r\n\r\n" .. HIDDEN, "400 closed"},
  {"bare LF in a chunk extension",
    CHUNKED .. "5;a\nb\r\nhello\r\n0\r\n\r\n", "400 closed"},
  {"garbage instead of CRLF after chunk data",
    CHUNKED .. "5\r\nhelloXX0\r\n\r\n" .. HIDDEN, "400 closed"},
  {"Transfer-Encoding in HTTP/1.0, kept alive",
    "POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" ..
    "5\r\nhello\r\n0\r\n\r\n" .. HIDDEN, "400 closed"},
  {"`Transfer-Encoding: identity, chunked`",
    POST .. "Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" .. HIDDEN, "501 closed"},
  {"`Transfer-Encoding: chunked, gzip` (chunked not last)",
    POST .. "Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n" .. HIDDEN, "501 closed"},
  {"Transfer-Encoding twice",
    POST .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" .. HIDDEN,
    "501 closed", "400 closed",
    "both refuse; llhttp sees a coding after chunked (501, as for any coding it does not know), " ..
    "nginx a duplicate header line (400)"},
  {"Transfer-Encoding and Content-Length (CL.TE smuggling)",
    POST .. "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" .. HIDDEN, "400 closed"},
  {"two equal Content-Lengths",
    POST .. "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" .. HIDDEN, "400 closed"},
  {"two different Content-Lengths",
    POST .. "Content-Length: 5\r\nContent-Length: 42\r\n\r\nhello" .. HIDDEN, "400 closed"},
  {"`Content-Length: 5, 5`", POST .. "Content-Length: 5, 5\r\n\r\nhello" .. HIDDEN, "400 closed"},
  {"`Content-Length: +5`", POST .. "Content-Length: +5\r\n\r\nhello" .. HIDDEN, "400 closed"},
  {"HTTP/1.1 without Host", "GET /hello HTTP/1.1\r\n\r\n", "400 closed"},
  {"two Hosts", "GET /hello HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400 closed"},
  {"Host with a bad value", "GET /hello HTTP/1.1\r\nHost: x/y\r\n\r\n", "400 closed"},
  {"empty Host", "GET /hello HTTP/1.1\r\nHost:\r\n\r\n", "200 open", "400 closed",
    "RFC 9112 3.2 allows an empty Host (a target URI without authority); nginx refuses it"},
  {"HTTP/1.0 without Host", "GET /hello HTTP/1.0\r\n\r\n", "200 closed"},
  {"HTTP/9.9", "GET /hello HTTP/9.9\r\nHost: x\r\n\r\n", "505 closed"},
  {"HTTP/2.0 request line", "GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", "505 closed"},
  {"HTTP/1.2", "GET /hello HTTP/1.2\r\nHost: x\r\n\r\n", "505 closed", "200 open",
    "RFC 9110 2.5 says a 1.x recipient SHOULD take a higher minor version as its own; " ..
    "llhttp's strict version check refuses it, and no client sends 1.2"},
  {"absolute-form target", "GET http://x/hello HTTP/1.1\r\nHost: x\r\n\r\n", "200 open"},
  {"absolute-form target with a port, Host naming another host",
    "GET http://example.com:8080/hello?y=1 HTTP/1.1\r\nHost: other\r\n\r\n", "200 open"},
  {"absolute-form target in HTTP/1.1 without Host", "GET http://x/hello HTTP/1.1\r\n\r\n", "400 closed"},
  {"absolute-form target in HTTP/1.0 without Host", "GET http://x/hello HTTP/1.0\r\n\r\n", "200 closed"},
  {"absolute-form target with a port that is not a number",
    "GET http://x:abc/hello HTTP/1.1\r\nHost: x\r\n\r\n", "400 closed"},
  {"absolute-form target with port 99999", "GET http://x:99999/hello HTTP/1.1\r\nHost: x\r\n\r\n",
    "400 closed", "200 open",
    "no port is past 65535: libcurl's URL parser refuses it; nginx reads the digits without a bound"},
  {"absolute-form target with an empty host (`http:///hello`)",
    "GET http:///hello HTTP/1.1\r\nHost: x\r\n\r\n", "400 closed"},
  {"absolute-form target with userinfo (`http://u@x/hello`)",
    "GET http://u@x/hello HTTP/1.1\r\nHost: x\r\n\r\n", "400 closed"},
  {"absolute-form target with an unclosed IPv6 literal",
    "GET http://[::1/hello HTTP/1.1\r\nHost: x\r\n\r\n", "400 closed"},
  {"absolute-form target `http://` (no host)", "GET http:// HTTP/1.1\r\nHost: x\r\n\r\n", "400 closed"},
  {"absolute-form target with an ftp scheme", "GET ftp://x/hello HTTP/1.1\r\nHost: x\r\n\r\n",
    "400 closed", "200 open",
    "an http server serves http and https URIs (RFC 9110 4.2); nginx takes any scheme and serves the path"},
  {"bare LF line ends in the head", "GET /hello HTTP/1.1\nHost: x\n\n", "400 closed", "200 open",
    "RFC 9112 2.2: a recipient MAY take a bare LF as a line end; llhttp (strict) does not, " ..
    "and a server that refuses it cannot be desynchronized by it"},
  {"NUL in a header value", "GET /hello HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", "400 closed"},
  {"pipelined: a good request, a bad one, a hidden one",
    GET .. "GET /hello HTTP/1.1\r\nHost: x\r\nX Y: 1\r\n\r\n" .. HIDDEN, "200 400 closed"},
  {"keep-alive: the bad request comes later",
    GET .. POST .. "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello" .. HIDDEN, "200 400 closed"},
  {"Connection: close, then a pipelined request",
    "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" .. HIDDEN, "200 closed"},
  {"chunked, then a hidden request in a chunk extension",
    CHUNKED .. "0;x=\"\r\n" .. HIDDEN .. "\"\r\n\r\n", "400 closed", "200 400 closed",
    "a quoted-string holds no CR or LF (RFC 9112 7.1.1, RFC 9110 5.6.4): llhttp refuses the chunk; " ..
    "nginx ends the extension at the CRLF, answers, and refuses what follows"},
}

-- The answers of the server on `port` to every row, all sent at once.
local function answers(port, dir)
  local jobs = {}
  for i, row in ipairs(rows) do
    local name = ("%s/row%d"):format(dir, i)
    local f = assert(io.open(name, "wb"))
    f:write(row[2])
    f:close()
    jobs[i] = bg(("python3 %sraw_http.py %d %s"):format(support, port, name))
  end
  local got = {}
  for i, job in ipairs(jobs) do
    local out, rc, err = finish(job, 30)
    assert(rc == 0, err)
    got[i] = out:gsub("%s+$", "")
  end
  return got
end

local function free_port()
  local out = sh([[python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])']])
  return assert(tonumber(out), out)
end

describe("RFC 9112 framing table", function()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local got_corio, got_nginx, seen = nil, nil, {}

  teardown(function()
    if os.getenv("FRAMING_TABLE") and got_corio and got_nginx then
      local f = assert(io.open(os.getenv("FRAMING_TABLE"), "w"))
      f:write("| request | corio | nginx 1.22 | why they differ |\n|---|---|---|---|\n")
      for i, row in ipairs(rows) do
        f:write(("| %s | %s | %s | %s |\n"):format(row[1], got_corio[i], got_nginx[i], row[5] or ""))
      end
      f:close()
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  describe("corio.serve", function()
    setup(function()
      local s = corio.serve{port = 0, handler = function(req)
        seen[#seen + 1] = req.path
        return "hello world\n"
      end}
      got_corio = answers(s.port, dir)
      s:close(1)
    end)

    for i, row in ipairs(rows) do
      it(row[1], function() assert.equal(row[3], got_corio[i]) end)
    end

    it("never hands the hidden request to the handler", function()
      for _, path in ipairs(seen) do assert.not_equal("/smuggled", path) end
      assert.truthy(#seen >= 10, #seen)
    end)
  end)

  describe("nginx (the reference)", function()
    setup(function()
      local port, ndir = free_port(), dir .. "/nginx"
      local out, rc = sh(("NGINX_OWNER=$PPID bash %snginx.sh start %d %s"):format(support, port, ndir))
      assert(rc == 0, out)
      local ok, res = pcall(answers, port, dir)
      sh(("bash %snginx.sh stop %d %s"):format(support, port, ndir))
      assert(ok, res)
      got_nginx = res
    end)

    for i, row in ipairs(rows) do
      it(row[1], function() assert.equal(row[4] or row[3], got_nginx[i]) end)
    end
  end)
end)
