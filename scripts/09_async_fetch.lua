-- Article: with a request that yields (aiohttp there, corio.fetch here)
-- the ten tasks wait together: the whole run takes about one request's
-- time.
--   Python: session = aiohttp.ClientSession(); response = await session.get(url)
-- Usage: corio scripts/09_async_fetch.lua [--url URL] [--n N] [--latency S]
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local article = require "article"
local o = article.options({url = false, n = 10, latency = 0.2})
local backend <close> = article.backend(o)

local get_status = corio.async(function(url)
  local session <close> = corio.session{}
  local response = session:get(url)
  return response:text()
end)

local get_result = corio.async(function()
  local url = backend.url .. article.API_PATH
  local status = corio.await(get_status(url))
  return status
end)

local start = article.clock()
local tasks = {}
for i = 1, o.n do tasks[i] = corio.ensure_future(get_result()) end
local loop = corio.get_event_loop()
loop:run_until_complete(corio.async(corio.wait)(tasks))
print("Cost time:", article.clock() - start)
