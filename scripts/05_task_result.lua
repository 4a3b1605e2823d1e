-- Article: without a callback, ask the finished task for its result.
--   Python: loop.run_until_complete(task); print('Task Result:', task.result())
-- Usage: corio scripts/05_task_result.lua [--url URL] [--latency S]
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local article = require "article"
local o = article.options({url = false, latency = 0.2})
local backend <close> = article.backend(o)
local url = backend.url .. article.WELCOME_PATH

local get_status = corio.async(function()
  return corio.blocking.get(url).status
end)

local task = corio.ensure_future(get_status())
print("Task:", task)

local loop = corio.get_event_loop()
loop:run_until_complete(task)
print("Task:", task)
print("Task Result:", task:result())
