-- progress.lua: the progress bar of corio.map and corio.imap, also
-- corio.progress for a loop written by hand and internal.progress for the
-- tools.  One line on stderr:
--   label [######----] 1,234/5,000 24% 812/s ETA 4s errors 3
-- or, with no known total, `label 1,234 812/s errors 3`.  On a terminal
-- the line is redrawn in place (carriage return, clear to end of line) at
-- most 10 times a second; elsewhere (a pipe, a log file) a plain line is
-- printed every 5 seconds, so a log does not fill with redraws.  Both end
-- with one final line.  Redraws are driven by the updates (a time check on
-- each, no drawing unless one is due) and by tick(), which map's ticker
-- task calls while calls are in flight, so a stalled job still shows its
-- rate falling.
local corio, internal = ...

local now = corio.time
local isatty = internal.isatty
local stderr = io.stderr
local format, rep, concat = string.format, string.rep, table.concat
local floor, mtype, type, huge = math.floor, math.type, type, math.huge
local getmetatable, error = getmetatable, error

local WIDTH = 20          -- characters inside the brackets
local TTY_EVERY = 0.1     -- at most 10 redraws a second on a terminal
local PLAIN_EVERY = 5     -- a plain line every 5 seconds otherwise

-- 1234567 -> "1,234,567"
local function thousands(n)
  local s, k = format("%d", n), nil
  repeat s, k = s:gsub("^(-?%d+)(%d%d%d)", "%1,%2") until k == 0
  return s
end

-- seconds -> "4s", "2m05s", "1h02m"; `precise`: "0.4s" under 10 s
local function duration(s, precise)
  if precise and s < 9.95 then return format("%.1fs", s) end
  s = floor(s + 0.5)
  if s < 60 then return format("%ds", s) end
  if s < 3600 then return format("%dm%02ds", s // 60, s % 60) end
  return format("%dh%02dm", s // 3600, s % 3600 // 60)
end

local Bar = {__name = "corio.ProgressBar"}
Bar.__index = Bar

-- The line for time t; `final` replaces the ETA by the time taken.  (line
-- and draw are not methods: a script calls update, tick and close only.)
local function line(self, t, final)
  local n, total = self.n, self.total
  local elapsed = t - self.t0
  local rate = elapsed > 0 and n / elapsed or 0
  local parts, k = {}, 0
  if self.label then k = k + 1; parts[k] = self.label end
  if total then
    local frac = total > 0 and n / total or 1
    if frac > 1 then frac = 1 end
    local fill = floor(frac * WIDTH)
    k = k + 1
    parts[k] = "[" .. rep("#", fill) .. rep("-", WIDTH - fill) .. "]"
    k = k + 1; parts[k] = thousands(n) .. "/" .. thousands(total)
    k = k + 1; parts[k] = floor(frac * 100) .. "%"
  else
    k = k + 1; parts[k] = thousands(n)
  end
  k = k + 1; parts[k] = thousands(floor(rate + 0.5)) .. "/s"
  if final then
    k = k + 1; parts[k] = "in " .. duration(elapsed, true)
  elseif total then
    k = k + 1
    parts[k] = "ETA " .. (rate > 0 and duration((total - n) / rate) or "?")
  end
  k = k + 1; parts[k] = "errors " .. thousands(self.errors)
  return concat(parts, " ")
end

local function draw(self, t)
  self.next_draw = t + self.every
  if self.tty then
    stderr:write("\r", line(self, t), "\27[K")
  else
    stderr:write(line(self, t), "\n")
  end
end

local describe, argerror = internal.describe, internal.argerror

-- The bar of a method call, checked (a call with '.' instead of ':').
local function checkself(self, fname)
  if getmetatable(self) ~= Bar then
    error(format("bad self to '%s' (corio.ProgressBar expected, got %s); " ..
                 "call it with ':'", fname, describe(self)), 3)
  end
end

-- A count: nil, or a finite number (the line prints it as an integer).
local function count(v, n, fname)
  if v ~= nil and (mtype(v) == nil or v ~= v or v == huge or v == -huge) then
    argerror(fname, n, "a finite number or nil", v)
  end
end

-- n more items done (default 1), `errors` of them failed (default 0).
function Bar:update(n, errors)
  checkself(self, "update")
  count(n, 1, "update")
  count(errors, 2, "update")
  if self.closed then return end
  self.n = self.n + (n or 1)
  if errors then self.errors = self.errors + errors end
  local t = now()
  if t >= self.next_draw then draw(self, t) end
end

-- Redraw if one is due (a job with nothing completing still shows time pass).
function Bar:tick()
  checkself(self, "tick")
  if self.closed then return end
  local t = now()
  if t >= self.next_draw then draw(self, t) end
end

-- The final line, once.
function Bar:close()
  checkself(self, "close")
  if self.closed then return end
  self.closed = true
  local last = line(self, now(), true)
  if self.tty then
    stderr:write("\r", last, "\27[K\n")
  else
    stderr:write(last, "\n")
  end
end
Bar.__close = Bar.close

-- A bar for `total` items (nil: unknown).  opts.label: a string;
-- opts.tty: draw as on a terminal or not (default: is stderr one?).
local function new(fname, total, label, tty)
  if total ~= nil and (mtype(total) == nil or not (total >= 0) or total == huge) then
    internal.raise("%s: total must be a finite non-negative number or nil (got %s)",
      fname, describe(total))
  end
  if label ~= nil and type(label) ~= "string" then
    internal.bad_option(fname, "label", "a string", label)
  end
  if tty == nil then tty = isatty(2) end
  local t = now()
  local bar = setmetatable({
    n = 0, errors = 0, total = total and floor(total), label = label,
    tty = tty, every = tty and TTY_EVERY or PLAIN_EVERY, t0 = t,
    next_draw = t + (tty and TTY_EVERY or PLAIN_EVERY), closed = false,
  }, Bar)
  if tty then draw(bar, t) end -- the bar shows at once on a terminal
  return bar
end

-- (update and tick also as plain functions, for a caller's inner loop)
internal.progress = {new = new, update = Bar.update, tick = Bar.tick,
                     thousands = thousands, duration = duration}

local NAMES = {label = true}

-- corio.progress(total [, {label=}]) -> bar with update(n, errors), close()
-- (also a to-be-closed value): the bar of corio.map for a loop of one's own.
function corio.progress(total, opts)
  opts = internal.options("corio.progress", opts, NAMES)
  return new("corio.progress", total, opts.label)
end
