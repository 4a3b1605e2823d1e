-- bench/download.lua: one big body, fetched the four ways, one per run
-- (peak RSS is per process: run it under /usr/bin/time -v).
--   build/corio bench/download.lua URL MODE [EXPECTED_BYTES]
-- MODE: body (the whole body as a string), output (to a file in
-- $TMPDIR, removed after), stream (r:chunks(), each dropped), stream-slow
-- (r:chunks() with a 1 ms sleep per chunk: the transfer pauses).
-- Prints the bytes, seconds and MB/s.  Figures: bench/NOTES.md,
-- "Streaming bodies".
local corio = require "corio"

local url, mode, expected = arg[1], arg[2] or "stream", tonumber(arg[3])
assert(url, "usage: download.lua URL body|output|stream|stream-slow [BYTES]")

local t0 = corio.time()
local bytes, held = 0, 0
local opts = {timeout = false}
if mode == "body" then
  local r = corio.get(url, opts)
  bytes = #r.body
elseif mode == "output" then
  local name = os.tmpname()
  opts.output = name
  local r = corio.get(url, opts)
  bytes = r.bytes
  os.remove(name)
elseif mode == "stream" or mode == "stream-slow" then
  opts.stream = true
  local r = corio.get(url, opts)
  for chunk in r:chunks() do
    bytes = bytes + #chunk
    if mode == "stream-slow" then corio.sleep(0.001) end
    local s = corio.stats().streamed
    if s > held then held = s end
  end
else
  error("unknown mode " .. mode)
end
local dt = corio.time() - t0
assert(not expected or bytes == expected, ("got %d bytes"):format(bytes))
print(("%s: %d bytes in %.2f s, %.0f MB/s, runtime held at most %d bytes")
  :format(mode, bytes, dt, bytes / dt / 1e6, held))
