-- Article, "绑定回调" (binding a callback): the loop calls the callback with
-- the task once the task is done; task:result() gives its return value.
-- The request is the article's requests.get: corio.blocking.get.
--   Python: task.add_done_callback(callback)
-- Usage: corio scripts/04_done_callback.lua [--url URL] [--latency S]
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local article = require "article"
local o = article.options({url = false, latency = 0.2})
local backend <close> = article.backend(o)
local url = backend.url .. article.WELCOME_PATH

local get_status = corio.async(function()
  return corio.blocking.get(url).status
end)

local function callback(task)
  print("Status:", task:result())
end

local coroutine_obj = get_status()
local task = corio.ensure_future(coroutine_obj)
task:add_done_callback(callback)
print("Task:", task)

local loop = corio.get_event_loop()
loop:run_until_complete(task)
print("Task:", task)
