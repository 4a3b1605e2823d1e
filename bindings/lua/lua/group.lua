-- group.lua: corio.task_group, structured concurrency as asyncio.TaskGroup
-- has it, and the FIFO lists of waiters that sync.lua's waits share.
local corio, internal = ...

local type, tostring, setmetatable, getmetatable = type, tostring, setmetatable, getmetatable
local pcall, error, rawequal = pcall, error, rawequal
local format = string.format
local pack, unpack = table.pack, table.unpack
local spawn, future, await = corio.spawn, corio.future, corio.await
local current_task = corio.current_task
local CancelledError = corio.CancelledError

local describe, argerror = internal.describe, internal.argerror
local wait_reason = internal.wait_reason -- what a dump or a trace shows

--[[
** {==================================================================
** FIFO lists
** ==================================================================
** A doubly linked list of nodes {value=...}: a waiter that leaves early
** (cancelled, timed out) unlinks itself in O(1), so a long line of waiters
** that give up one by one costs no more than the line itself.
--]]
local fifo = {}
internal.fifo = fifo

function fifo.new() return {n = 0} end

function fifo.push(list, value)
  local node = {value = value, list = list, prev = list.tail}
  if list.tail then list.tail.next = node else list.head = node end
  list.tail = node
  list.n = list.n + 1
  return node
end

-- At the front: a waiter that lost what it was woken for keeps its turn.
function fifo.push_front(list, value)
  local node = {value = value, list = list, next = list.head}
  if list.head then list.head.prev = node else list.tail = node end
  list.head = node
  list.n = list.n + 1
  return node
end

function fifo.unlink(node)
  local list = node.list
  if list == nil then return end
  if node.prev then node.prev.next = node.next else list.head = node.next end
  if node.next then node.next.prev = node.prev else list.tail = node.prev end
  node.list, node.prev, node.next = nil, nil, nil
  list.n = list.n - 1
end

-- The first value, unlinked; nil when empty.
function fifo.shift(list)
  local node = list.head
  if node == nil then return nil end
  fifo.unlink(node)
  return node.value
end

-- Hand `...` to the first waiter still waiting (a future not done: one
-- cancelled while in the line is skipped).  Returns true if one took it.
function fifo.wake(list, ...)
  while list.head do
    local fut = fifo.shift(list)
    if not fut:done() then
      fut:set_result(...)
      return true
    end
  end
  return false
end

-- How many waiters in the list still wait (for tostring).
function fifo.count(list)
  local n, node = 0, list.head
  while node do
    if not node.value:done() then n = n + 1 end
    node = node.next
  end
  return n
end

--[[
** Wait in `list` (at the front if `front`), for `reason` ("queue get",
** "semaphore": what task dumps and traces say).  Returns true and what the
** waker handed over, or false, the error (a CancelledError, mostly) and
** whether the waiter had been woken when the error came: then it holds
** what it was handed and must pass it on before it raises.
--]]
function fifo.park(list, front, reason)
  local fut = future()
  local node = (front and fifo.push_front or fifo.push)(list, fut)
  if reason then wait_reason(reason) end
  local r = pack(pcall(await, fut))
  if r[1] then return true, unpack(r, 2, r.n) end
  fifo.unlink(node)
  local woken = fut:done() and not fut:cancelled()
  if not fut:done() then fut:cancel() end
  return false, r[2], woken
end

-- }==================================================================

--[[
** {==================================================================
** Task groups
** ==================================================================
--]]
corio.GroupError = internal.error("GroupError", "group", "")

local Group = {}
Group.__index = Group
Group.__name = "corio.TaskGroup"

local function group_error(errors)
  local n = #errors
  return internal.error("GroupError", "group",
    format("%d error%s in a task group, the first: %s", n,
           n == 1 and "" or "s", tostring(errors[1])), {errors = errors})
end

local function is_cancel(e)
  return internal.iserror(e) and e == CancelledError
end

-- Cancel every child still running, in the order they were spawned.
local function abort(g)
  g.aborting = true
  local node = g.children.head
  while node do
    local t = node.value
    node = node.next
    t:cancel()
  end
end

-- A child is done: count it out; its error (not a cancel) aborts the group
-- and, while fn still runs, interrupts fn by cancelling the group's task.
local function child_done(g, node, t)
  fifo.unlink(node)
  if g.children.n == 0 and g.completed and not g.completed:done() then
    g.completed:set_result(true)
  end
  if t:cancelled() then return end
  local ok, e = pcall(t.result, t)
  if ok then return end
  g.errors[#g.errors + 1] = e
  if g.aborting then return end
  abort(g)
  if g.state == "running" and not g.parent:done() then
    g.cancel_requested = true
    g.parent:cancel("a task of its group failed")
  end
end

local function is_coroutine_object(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__name == "corio.Coroutine"
end

function Group:spawn(f, ...)
  if getmetatable(self) ~= Group then
    error(format("bad self to 'g:spawn' (task group expected, got %s); call it as g:spawn(f, ...)",
                 describe(self)), 2)
  end
  if type(f) ~= "function" and not is_coroutine_object(f) then
    argerror("g:spawn", 1, "function or coroutine object", f)
  end
  if self.state == "finished" then
    error("g:spawn: the task group has finished", 2)
  end
  if self.aborting then
    error("g:spawn: the task group is shutting down (a task failed or it was cancelled)", 2)
  end
  local t = spawn(f, ...)
  local node = fifo.push(self.children, t)
  t:add_done_callback(function(task) child_done(self, node, task) end)
  return t
end

function Group:__tostring()
  return format("<corio.TaskGroup %s%s tasks=%d errors=%d>", self.state,
                self.aborting and " aborting" or "", self.children.n, #self.errors)
end

-- The group itself, in the task that runs it.
local function run_group(fn, ...)
  local g = setmetatable({parent = current_task(), children = fifo.new(),
                          errors = {}, state = "running", aborting = false,
                          cancel_requested = false}, Group)
  local r = pack(pcall(fn, g, ...))
  g.state = "exiting"
  local body_error, cancel_error
  if not r[1] then
    if not is_cancel(r[2]) then
      body_error = r[2]
      g.errors[#g.errors + 1] = body_error
    elseif not g.cancel_requested then
      cancel_error = r[2] -- from outside: raised once the children are done
    end
    if not g.aborting then abort(g) end
  end
  -- Wait for every child, whatever comes: a cancel of this task only
  -- cancels the children (again), and the wait goes on.
  while g.children.n > 0 do
    g.completed = future()
    wait_reason(format("task group (%d task%s)", g.children.n,
                       g.children.n == 1 and "" or "s"))
    local ok, e = pcall(await, g.completed)
    if not ok then
      if not g.completed:done() then g.completed:cancel() end
      if is_cancel(e) then
        cancel_error = cancel_error or e
      elseif body_error == nil then
        body_error = e
        g.errors[#g.errors + 1] = e
      end
      abort(g)
    end
  end
  g.completed = nil
  g.state = "finished"
  local errors = g.errors
  if #errors == 1 and rawequal(errors[1], body_error) then error(body_error, 0) end
  if #errors > 0 then error(group_error(errors), 0) end
  if cancel_error then error(cancel_error, 0) end
  return unpack(r, 2, r.n)
end

function corio.task_group(fn, ...)
  if type(fn) ~= "function" then argerror("corio.task_group", 1, "function", fn) end
  if current_task() ~= nil then return run_group(fn, ...) end
  -- Not in a task (top level): the group needs a task of its own to
  -- interrupt fn when a child fails, so it runs in one; awaiting it runs
  -- the loop, as every wait at top level does.
  local t = spawn(run_group, fn, ...)
  local r = pack(pcall(await, t))
  if not r[1] then
    t:cancel()
    error(r[2], 0)
  end
  return unpack(r, 2, r.n)
end

-- }==================================================================
