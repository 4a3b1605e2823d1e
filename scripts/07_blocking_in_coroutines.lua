-- Article, "协程实现": a blocking request inside a coroutine holds the
-- whole loop, so five "concurrent" tasks run one after another.  The
-- timestamps show it: each task starts only when the previous one is done.
--   Python: status = requests.get(url).status_code   # inside async def
-- Usage: corio scripts/07_blocking_in_coroutines.lua [--url URL] [--n N] [--latency S]
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local article = require "article"
local o = article.options({url = false, n = 5, latency = 0.2})
local backend <close> = article.backend(o)
local url = backend.url .. article.WELCOME_PATH

local get_status = corio.async(function()
  print(("waiting for %s %.3f"):format(url, article.clock()))
  return corio.blocking.get(url).status
end)

local start = article.clock()
local tasks = {}
for i = 1, o.n do tasks[i] = corio.ensure_future(get_status()) end
local loop = corio.get_event_loop()
loop:run_until_complete(corio.async(corio.wait)(tasks))
print("Cost time:", article.clock() - start)
