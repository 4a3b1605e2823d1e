-- sync.lua: corio.semaphore, corio.lock, corio.event and corio.queue, with
-- asyncio's semantics: every wait is a future in a FIFO line (group.lua's
-- fifo), and a waiter cancelled after it was handed something passes it on.
local corio, internal = ...

local type, tostring, setmetatable, getmetatable = type, tostring, setmetatable, getmetatable
local error = error
local format = string.format
local mtype, tointeger = math.type, math.tointeger
local fifo, argerror, describe = internal.fifo, internal.argerror, internal.describe

local QueueFull = internal.error("QueueFull", "queue_full", "")
local QueueEmpty = internal.error("QueueEmpty", "queue_empty", "")
local QueueShutDown = internal.error("QueueShutDown", "queue_shutdown", "")
corio.QueueFull, corio.QueueEmpty, corio.QueueShutDown = QueueFull, QueueEmpty, QueueShutDown

local function shut_down(message)
  return internal.error("QueueShutDown", "queue_shutdown", message)
end

-- An integer from an integer-valued number, or nil.
local function integer(v)
  if mtype(v) == "float" and v == v // 1 and v > -2 ^ 53 and v < 2 ^ 53 then
    return tointeger(v)
  end
  if mtype(v) == "integer" then return v end
  return nil
end

-- The object `self` of a method call, checked: a call with `.` instead of
-- `:` says so.
local function checkself(self, mt, fname)
  if getmetatable(self) ~= mt then
    error(format("bad self to '%s' (%s expected, got %s); call it with ':'",
                 fname, mt.__name, describe(self)), 3)
  end
end

--[[
** {==================================================================
** Semaphores and locks
** ==================================================================
** A release hands its permit straight to the first waiter (as asyncio's
** Semaphore does), so a task that arrives later cannot take it first:
** the line is FIFO.  A waiter cancelled once it was handed a permit hands
** it on.  A lock is a semaphore of one permit with a lock's words.
--]]
local Semaphore = {__name = "corio.Semaphore"}
Semaphore.__index = Semaphore
local Lock = {__name = "corio.Lock"}
Lock.__index = Lock

local Guard = {__name = "corio.Guard"}
Guard.__index = Guard

-- A permit is free: to the first waiter, or back to the count.
local function free_permit(s)
  if not fifo.wake(s.waiters, true) then s.value = s.value + 1 end
end

local function release(s, fname)
  if s.value >= s.bound then
    if s.bound == 1 and getmetatable(s) == Lock then
      error(fname .. ": the lock is not locked", 3)
    end
    error(format("%s: released more times than acquired (bound %d)", fname,
                 s.bound), 3)
  end
  free_permit(s)
end

function Guard:release()
  checkself(self, Guard, "release")
  if self.released then return end
  self.released = true
  release(self.owner, getmetatable(self.owner) == Lock and "lock:release" or "semaphore:release")
end
Guard.__close = Guard.release

function Guard:__tostring()
  return format("<corio.Guard %s of %s>", self.released and "released" or "held",
                tostring(self.owner))
end

local function acquire(s)
  if s.value > 0 then
    s.value = s.value - 1
  else
    local ok, e, woken = fifo.park(s.waiters, false, s.reason)
    if not ok then
      if woken then free_permit(s) end
      error(e, 0)
    end
  end
  return setmetatable({owner = s, released = false}, Guard)
end

function Semaphore:acquire()
  checkself(self, Semaphore, "semaphore:acquire")
  return acquire(self)
end

function Semaphore:release()
  checkself(self, Semaphore, "semaphore:release")
  release(self, "semaphore:release")
end

function Semaphore:locked()
  checkself(self, Semaphore, "semaphore:locked")
  return self.value == 0
end

function Semaphore:available()
  checkself(self, Semaphore, "semaphore:available")
  return self.value
end

function Semaphore:__tostring()
  return format("<corio.Semaphore value=%d/%d waiters=%d>", self.value,
                self.bound, fifo.count(self.waiters))
end

function corio.semaphore(n)
  local v = integer(n)
  if v == nil or v < 1 then argerror("corio.semaphore", 1, "positive integer", n) end
  return setmetatable({value = v, bound = v, waiters = fifo.new(),
                       reason = "semaphore"}, Semaphore)
end

function Lock:acquire()
  checkself(self, Lock, "lock:acquire")
  return acquire(self)
end

function Lock:release()
  checkself(self, Lock, "lock:release")
  release(self, "lock:release")
end

function Lock:locked()
  checkself(self, Lock, "lock:locked")
  return self.value == 0
end

function Lock:__tostring()
  return format("<corio.Lock %s waiters=%d>", self.value == 0 and "locked" or "unlocked",
                fifo.count(self.waiters))
end

function corio.lock()
  return setmetatable({value = 1, bound = 1, waiters = fifo.new(),
                       reason = "lock"}, Lock)
end

-- }==================================================================

--[[
** {==================================================================
** Events
** ==================================================================
--]]
local Event = {__name = "corio.Event"}
Event.__index = Event

function Event:set()
  checkself(self, Event, "event:set")
  if self.flag then return end
  self.flag = true
  while fifo.wake(self.waiters, true) do end
end

function Event:clear()
  checkself(self, Event, "event:clear")
  self.flag = false
end

function Event:is_set()
  checkself(self, Event, "event:is_set")
  return self.flag
end

-- true once set (at once if set already), as asyncio's Event.wait.
function Event:wait()
  checkself(self, Event, "event:wait")
  if self.flag then return true end
  local ok, e = fifo.park(self.waiters, false, "event")
  if not ok then error(e, 0) end -- a set wakes everyone: nothing to pass on
  return true
end

function Event:__tostring()
  return format("<corio.Event %s waiters=%d>", self.flag and "set" or "unset",
                fifo.count(self.waiters))
end

function corio.event()
  return setmetatable({flag = false, waiters = fifo.new()}, Event)
end

-- }==================================================================

--[[
** {==================================================================
** Queues
** ==================================================================
** Items stay in the buffer until a task takes them, so no item can be lost
** with a waiter.  A put wakes the first getter and counts it in
** `gwoken`; a get() that arrives while every item is promised to a woken
** getter waits behind the line instead of taking one (FIFO).  get_nowait
** may still take such an item (as in asyncio, where empty() false means
** get_nowait succeeds); the getter it was promised to then waits again, at
** the front of the line.  Putters mirror this with free slots (`pwoken`).
** A woken waiter that is cancelled instead wakes the next one.
--]]
local Queue = {__name = "corio.Queue"}
Queue.__index = Queue

local function qsize(q) return q.last - q.first + 1 end

local function full(q) return q.maxsize > 0 and qsize(q) >= q.maxsize end

-- Wake the first getter if an item is not promised to a woken one yet.
local function wake_getter(q)
  if qsize(q) > q.gwoken and fifo.wake(q.getters, true) then
    q.gwoken = q.gwoken + 1
  end
end

local function wake_putter(q)
  if (q.maxsize == 0 or qsize(q) + q.pwoken < q.maxsize) and
     fifo.wake(q.putters, true) then
    q.pwoken = q.pwoken + 1
  end
end

local function append(q, v)
  q.last = q.last + 1
  q.items[q.last] = v
  q.unfinished = q.unfinished + 1
  q.finished.flag = false -- join() waits again
  wake_getter(q)
end

local function take(q)
  local i = q.first
  local v = q.items[i]
  q.items[i] = nil
  q.first = i + 1
  wake_putter(q)
  return v
end

local function put_nowait(q, v)
  if q.is_shutdown then error(shut_down("the queue is shut down"), 3) end
  if full(q) then error(internal.error("QueueFull", "queue_full",
                          format("the queue is full (maxsize %d)", q.maxsize)), 3) end
  append(q, v)
end

function Queue:put_nowait(v)
  checkself(self, Queue, "queue:put_nowait")
  if v == nil then argerror("queue:put_nowait", 1, "non-nil value", v) end
  put_nowait(self, v)
end

function Queue:put(v)
  checkself(self, Queue, "queue:put")
  if v == nil then argerror("queue:put", 1, "non-nil value", v) end
  local front = false
  -- wait while every free slot is promised to a woken putter
  while not self.is_shutdown and self.maxsize > 0 and
        qsize(self) + self.pwoken >= self.maxsize do
    local ok, e, woken = fifo.park(self.putters, front, "queue put")
    if woken or ok then self.pwoken = self.pwoken - 1 end
    if not ok then
      if woken then wake_putter(self) end -- its slot goes to the next one
      error(e, 0)
    end
    if not full(self) or self.is_shutdown then break end
    front = true -- put_nowait took the slot: wait again, first in line
  end
  put_nowait(self, v)
end

function Queue:get_nowait()
  checkself(self, Queue, "queue:get_nowait")
  if qsize(self) == 0 then
    if self.is_shutdown then error(shut_down("the queue is shut down and empty"), 2) end
    error(internal.error("QueueEmpty", "queue_empty", "the queue is empty"), 2)
  end
  return take(self)
end

function Queue:get()
  checkself(self, Queue, "queue:get")
  local front = false
  while true do
    local n = qsize(self)
    -- an item not promised to a woken getter; once shut down, any item
    if n > self.gwoken or (self.is_shutdown and n > 0) then return take(self) end
    if self.is_shutdown then error(shut_down("the queue is shut down and empty"), 2) end
    local ok, e, woken = fifo.park(self.getters, front, "queue get")
    if woken or ok then self.gwoken = self.gwoken - 1 end
    if not ok then
      if woken then wake_getter(self) end -- its item goes to the next one
      error(e, 0)
    end
    if qsize(self) > 0 then return take(self) end
    front = true -- get_nowait took the item: wait again, first in line
  end
end

function Queue:qsize()
  checkself(self, Queue, "queue:qsize")
  return qsize(self)
end

function Queue:empty()
  checkself(self, Queue, "queue:empty")
  return qsize(self) == 0
end

function Queue:full()
  checkself(self, Queue, "queue:full")
  return full(self)
end

function Queue:task_done()
  checkself(self, Queue, "queue:task_done")
  if self.unfinished <= 0 then
    error("queue:task_done: called more times than there were items put", 2)
  end
  self.unfinished = self.unfinished - 1
  if self.unfinished == 0 then self.finished:set() end
end

-- Wait until every item put has been marked done with task_done().
function Queue:join()
  checkself(self, Queue, "queue:join")
  if self.unfinished > 0 then self.finished:wait() end
end

-- Python 3.13's Queue.shutdown: puts raise from now on; gets raise once the
-- queue is empty (at once with `immediate`, which drops the items left).
function Queue:shutdown(immediate)
  checkself(self, Queue, "queue:shutdown")
  if immediate ~= nil and type(immediate) ~= "boolean" then
    argerror("queue:shutdown", 1, "boolean or nil", immediate)
  end
  self.is_shutdown = true
  if immediate then
    for i = self.first, self.last do self.items[i] = nil end
    local n = qsize(self)
    self.first = self.last + 1
    self.unfinished = self.unfinished > n and self.unfinished - n or 0
    if self.unfinished == 0 then self.finished:set() end
  end
  -- every waiter looks again, and raises where it must
  while fifo.wake(self.getters, true) do self.gwoken = self.gwoken + 1 end
  while fifo.wake(self.putters, true) do self.pwoken = self.pwoken + 1 end
end

function Queue:__tostring()
  local s = format("<corio.Queue maxsize=%d qsize=%d", self.maxsize, qsize(self))
  local g, p = fifo.count(self.getters), fifo.count(self.putters)
  if g > 0 then s = s .. format(" getters=%d", g) end
  if p > 0 then s = s .. format(" putters=%d", p) end
  if self.unfinished > 0 then s = s .. format(" tasks=%d", self.unfinished) end
  if self.is_shutdown then s = s .. " shutdown" end
  return s .. ">"
end

function corio.queue(maxsize)
  local n = maxsize == nil and 0 or integer(maxsize)
  if n == nil or n < 0 then
    argerror("corio.queue", 1, "nil or a non-negative integer", maxsize)
  end
  local finished = corio.event()
  finished.flag = true
  return setmetatable({items = {}, first = 1, last = 0, maxsize = n,
                       getters = fifo.new(), putters = fifo.new(),
                       gwoken = 0, pwoken = 0, unfinished = 0,
                       finished = finished, is_shutdown = false}, Queue)
end

-- }==================================================================
