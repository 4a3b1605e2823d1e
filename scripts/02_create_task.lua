-- Article: a task wraps the coroutine object and carries its state
-- (pending, then finished with its result).
--   Python: task = loop.create_task(coroutine); loop.run_until_complete(task)
-- Usage: corio scripts/02_create_task.lua
package.path = arg[0]:match("^(.-)[^/]*$") .. "lib/?.lua;" .. package.path
require("article").options({})

local get_number = corio.async(function(x)
  print("Number:", x)
  return x
end)

local coroutine = get_number(1)
print("Coroutine:", coroutine)
print("After calling execute")

local loop = corio.get_event_loop()
local task = loop:create_task(coroutine)
print("Task:", task)
loop:run_until_complete(task)
print("Task:", task)
print("After calling loop")
