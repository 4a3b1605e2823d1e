-- Article, "和单进程、多进程对比": 100 requests to the slow backend made
-- four ways: one after another, a pool of 8 processes, 200 threads, and
-- coroutines.  Prints a table and writes an SVG bar chart of the seconds.
--   Python: requests.get in a for loop; multiprocessing.Pool(8).map;
--           200 threading.Thread; asyncio + aiohttp
-- Usage: corio scripts/11_comparison.lua [--url URL] [--n N] [--latency S]
--        [--capacity N] [--processes N] [--workers N] [--out DIR]
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local article = require "article"
local svg = require "svg"
local o = article.options({url = false, n = 100, latency = 0.2, capacity = 200,
                           processes = 8, workers = 200, out = "results"})
local backend <close> = article.backend(o)
local url = backend.url .. article.API_PATH

-- The article's get_page.  It travels to threads and processes as
-- bytecode: it may use globals (corio there is the worker's own module),
-- but no upvalue, so the URL comes as its argument.
local function get_page(u)
  local ok, response = pcall(corio.blocking.get, u)
  return ok and response.status or 0
end

local urls = {}
for i = 1, o.n do urls[i] = url end

local models = {
  {model = "sequential", workers = 1, run = function()
    local statuses = {}
    for i, u in ipairs(urls) do statuses[i] = get_page(u) end
    return statuses
  end},
  {model = "processes", workers = math.min(o.processes, o.n), run = function()
    return corio.processes.map(get_page, urls, {processes = o.processes})
  end},
  {model = "threads", workers = math.min(o.workers, o.n), run = function()
    return corio.threads.map(get_page, urls, {threads = o.workers})
  end},
  {model = "coroutines", workers = o.n, run = function()
    local tasks = {}
    for i, u in ipairs(urls) do
      tasks[i] = corio.spawn(function() return corio.fetch(u).status end)
    end
    return corio.gather(tasks, {return_exceptions = true})
  end},
}

local rows = {}
for _, m in ipairs(models) do
  local start = article.clock()
  local statuses = m.run()
  local secs = article.clock() - start
  local ok = 0
  for i = 1, o.n do if statuses[i] == 200 then ok = ok + 1 end end
  print(("%-10s Cost time: %.3f"):format(m.model, secs))
  rows[#rows + 1] = {model = m.model, workers = m.workers, requests = o.n,
                     ok = ok, failed = o.n - ok, secs = secs}
end

print()
article.print_table({{"model", "model"}, {"workers", "workers"},
                     {"requests", "requests"}, {"ok", "ok"},
                     {"failed", "failed"}, {"seconds", "secs", "%.3f"}}, rows)

local bars = {}
for i, r in ipairs(rows) do
  bars[i] = {label = r.model, value = tonumber(("%.2f"):format(r.secs)),
             note = r.workers .. (r.model == "coroutines" and " tasks" or
                                  r.workers == 1 and " worker" or " workers")}
end
local file = svg.bars{
  title = ("%d requests, %s s each: seconds by execution model")
    :format(o.n, o.url and "?" or o.latency),
  ylabel = "seconds", unit = " s", bars = bars,
  file = article.ensure_dir(o.out) .. "/comparison.svg",
}
print("Chart: " .. file)
