-- corio.map and corio.imap under load, in bench/fetch.lua's shape, for
-- bench/map.sh: the same session, options and output line as fetch.lua's
-- hand-written worker loop, so the two compare in one run.
--   corio bench/map.lua map  URL N C   corio.map over an array of N URLs,
--                                      progress on (a plain line every 5 s
--                                      on stderr; a bar on a terminal)
--   corio bench/map.lua imap URL N C   corio.imap over an iterator of N
--                                      URLs (none held in memory), progress
--                                      off: the peak RSS should follow C,
--                                      not N
-- Prints exactly one line:
--   peer=corio_map n=N c=C ok=OK fail=FAIL secs=S rps=R
-- ok = a 2xx response with its body read.
local mode, url, n, c = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
if not ((mode == "map" or mode == "imap") and url and n and c) then
  io.stderr:write("usage: corio bench/map.lua map|imap URL N C\n")
  os.exit(2)
end
local session <close> = corio.session {max_idle = c}
local opts = {timeout = 120} -- as fetch.lua
local function get(u) return session:get(u, opts).ok end
local ok, fail = 0, 0

local t0 = corio.time()
if mode == "map" then
  local urls = {}
  for i = 1, n do urls[i] = url end
  t0 = corio.time() -- the list is made before the clock starts
  local r = corio.map(get, urls, {concurrency = c, progress = true,
                                  return_exceptions = true, label = "map"})
  for i = 1, n do if r[i] == true then ok = ok + 1 else fail = fail + 1 end end
else
  local k = 0
  local function urls()
    if k < n then k = k + 1; return url end
  end
  for _, good in corio.imap(get, urls, {concurrency = c, return_exceptions = true}) do
    if good == true then ok = ok + 1 else fail = fail + 1 end
  end
end
local secs = corio.time() - t0
print(("peer=corio_%s n=%d c=%d ok=%d fail=%d secs=%.3f rps=%.1f")
  :format(mode, n, c, ok, fail, secs, n / secs))
os.exit(fail == 0 and 0 or 1)
