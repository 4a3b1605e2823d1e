-- Article: the same async fetch with 1, 10, 50, 100, 200 and 300 tasks.
-- The time stays near one request's latency while the backend keeps up;
-- past its capacity the backend answers 502 (the article saw 502s from
-- 200 tasks on).  Prints each run as the article does, then a table, and
-- writes an SVG line chart of seconds against tasks.
-- Usage: corio scripts/10_scaling.lua [--url URL] [--sizes 1,10,...]
--        [--latency S] [--capacity N] [--out DIR]
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local article = require "article"
local svg = require "svg"
local o = article.options({url = false, sizes = {1, 10, 50, 100, 200, 300},
                           latency = 0.2, capacity = 200, out = "results"})
local backend <close> = article.backend(o)
local url = backend.url .. article.API_PATH

local function get_status()
  return corio.fetch(url).status
end

local rows = {}
for _, n in ipairs(o.sizes) do
  local start = article.clock()
  local tasks = {}
  for i = 1, n do tasks[i] = corio.spawn(get_status) end
  local statuses = corio.gather(tasks, {return_exceptions = true})
  local secs = article.clock() - start
  local ok, bad_gateway, failed = 0, 0, 0
  for i = 1, n do
    local s = statuses[i]
    if s == 200 then ok = ok + 1
    elseif s == 502 then bad_gateway = bad_gateway + 1
    else failed = failed + 1 end
  end
  print("# " .. n)
  print("Cost time:", secs)
  rows[#rows + 1] = {tasks = n, ok = ok, bad_gateway = bad_gateway,
                     failed = failed, secs = secs}
end

print()
article.print_table({{"tasks", "tasks"}, {"ok", "ok"}, {"502", "bad_gateway"},
                     {"failed", "failed"}, {"seconds", "secs", "%.3f"}}, rows)

local xs, secs, notes = {}, {}, {}
for i, r in ipairs(rows) do
  xs[i], secs[i] = tostring(r.tasks), r.secs
  notes[i] = r.bad_gateway > 0 and (r.bad_gateway .. " x 502") or nil
end
local file = svg.lines{
  title = ("Async fetch: seconds against tasks (latency %s s, capacity %s)")
    :format(o.url and "?" or o.latency, o.url and "?" or o.capacity),
  xlabel = "tasks at once", ylabel = "seconds",
  xs = xs, series = {{label = "corio.fetch", values = secs, notes = notes}},
  file = article.ensure_dir(o.out) .. "/scaling.svg",
}
print("Chart: " .. file)
