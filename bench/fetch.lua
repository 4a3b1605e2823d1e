-- The corio client under load, in the peers' shape (shared/bench/peers):
-- N GETs of URL in total, C worker tasks, each fetching one URL after the
-- other on one session that keeps up to C idle connections (keep-alive
-- connections are reused).  The session is made before the clock starts,
-- as the peers make theirs (aiohttp's ClientSession, libcurl's global init
-- and multi handle).  Prints exactly one line:
--   peer=corio n=N c=C ok=OK fail=FAIL secs=S rps=R
-- ok = a 2xx response with its body read (a Lua string); `secs` runs from
-- the first request to the last response (start-up excluded, as for the
-- peers).
-- Usage: corio bench/fetch.lua URL N C [KEY=VALUE...]
-- Each KEY=VALUE is one more session option, e.g. max_connections=100 or
-- max_per_host=10 (the session's queue, fetch_gate.c, then sees every
-- transfer: bench/NOTES.md, "A session limit").
local url, n, c = arg[1], tonumber(arg[2]), tonumber(arg[3])
if not (url and n and c) then
  io.stderr:write("usage: corio bench/fetch.lua URL N C [KEY=VALUE...]\n")
  os.exit(2)
end
c = math.min(c, n)
local sopts = {max_idle = c}
for i = 4, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(%d+)$")
  if not k then
    io.stderr:write("bad session option: ", arg[i], "\n")
    os.exit(2)
  end
  sopts[k] = tonumber(v)
end
local session <close> = corio.session(sopts)
local opts = {timeout = 120} -- the peers' total timeout
local left, ok, fail = n, 0, 0

local function worker()
  while left > 0 do
    left = left - 1
    local good, r = pcall(session.get, session, url, opts)
    if good and r.ok then ok = ok + 1 else fail = fail + 1 end
  end
end

local t0 = corio.time()
local tasks = {}
for i = 1, c do tasks[i] = corio.spawn(worker) end
corio.wait(tasks)
local secs = corio.time() - t0
print(("peer=corio n=%d c=%d ok=%d fail=%d secs=%.3f rps=%.1f")
  :format(n, c, ok, fail, secs, n / secs))
os.exit(fail == 0 and 0 or 1)
