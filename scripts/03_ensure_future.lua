-- Article: ensure_future makes the task without going through the loop.
--   Python: task = asyncio.ensure_future(coroutine)
-- Usage: corio scripts/03_ensure_future.lua
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
require("article").options({})

local get_number = corio.async(function(x)
  print("Number:", x)
  return x
end)

local coroutine = get_number(1)
print("Coroutine:", coroutine)
print("After calling execute")

local task = corio.ensure_future(coroutine)
print("Task:", task)
local loop = corio.get_event_loop()
loop:run_until_complete(task)
print("Task:", task)
print("After calling loop")
