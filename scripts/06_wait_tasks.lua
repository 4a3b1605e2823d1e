-- Article, "多任务协程" (many tasks): a list of tasks handed to wait.
--   Python: loop.run_until_complete(asyncio.wait(tasks))
-- Usage: corio scripts/06_wait_tasks.lua [--url URL] [--n N] [--latency S]
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
local article = require "article"
local o = article.options({url = false, n = 5, latency = 0.2})
local backend <close> = article.backend(o)
local url = backend.url .. article.WELCOME_PATH

local get_status = corio.async(function()
  return corio.blocking.get(url).status
end)

local tasks = {}
for i = 1, o.n do tasks[i] = corio.ensure_future(get_status()) end
local shown = {}
for i, t in ipairs(tasks) do shown[i] = tostring(t) end
print("Tasks: [" .. table.concat(shown, ", ") .. "]")

local loop = corio.get_event_loop()
loop:run_until_complete(corio.async(corio.wait)(tasks))

for _, task in ipairs(tasks) do
  print("Task Result:", task:result())
end
