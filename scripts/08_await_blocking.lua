-- Article: wrapping the blocking call in another coroutine and awaiting it
-- changes nothing.  await only yields when what it waits for yields; a
-- blocking request never does, so the 50 tasks still run one by one.
--   Python: status = await get_status(url)   # get_status calls requests.get
-- Usage: corio scripts/08_await_blocking.lua [--url URL] [--n N] [--latency S]
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local article = require "article"
local o = article.options({url = false, n = 50, latency = 0.2})
local backend <close> = article.backend(o)
local url = backend.url .. article.WELCOME_PATH

local get_status = corio.async(function(u)
  return corio.blocking.get(u).status
end)

local get_result = corio.async(function()
  print(("waiting for %s %.3f"):format(url, article.clock()))
  local status = corio.await(get_status(url))
  return status
end)

local start = article.clock()
local tasks = {}
for i = 1, o.n do tasks[i] = corio.ensure_future(get_result()) end
local loop = corio.get_event_loop()
loop:run_until_complete(corio.async(corio.wait)(tasks))
print("Cost time:", article.clock() - start)
