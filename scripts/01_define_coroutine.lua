-- Article, "定义协程" (defining a coroutine): calling an async function
-- runs nothing; it makes a coroutine object, which runs once the event
-- loop is given it.
--   Python: coroutine = get_number(1); loop.run_until_complete(coroutine)
-- Usage: corio scripts/01_define_coroutine.lua
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
loop:run_until_complete(coroutine)
print("After calling loop")
