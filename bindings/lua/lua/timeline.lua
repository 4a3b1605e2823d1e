-- timeline.lua: corio.timeline(trace, svg), a picture of tasks over time
-- drawn from a trace file (ltrace.c): a row per task, its runs in a solid
-- colour, its waits in a lighter one with the reason in a <title>, and a
-- time axis.  Past ROWS_MAX tasks, rows are grouped (by the task's own
-- name, or else its spawn site) with their counts, and each group row
-- shows per pixel column whether any of its tasks ran or waited there, so
-- the picture stays small whatever the number of tasks.
local corio, internal = ...

local format, concat, floor, huge = string.format, table.concat, math.floor,
                                    math.huge
local decode = corio.json.decode

local ROWS_MAX = 100
local WIDTH, LABEL, ROW, GAP, TOP = 1100, 240, 14, 4, 46
local RUN, WAIT, MAIN_RUN, MAIN_WAIT = "#1f5fbf", "#a8c6f0", "#6b6b6b", "#d4d4d4"

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", {["&"] = "&amp;", ["<"] = "&lt;",
                                       [">"] = "&gt;", ["\""] = "&quot;"}))
end

-- seconds, shortened for labels
local function secs(us)
  local s = us / 1e6
  if s == 0 then return "0" end
  if s < 0.001 then return format("%gus", us) end
  if s < 1 then return format("%gms", floor(us / 10 + 0.5) / 100) end
  return format("%gs", floor(s * 1000 + 0.5) / 1000)
end

-- a tick step of 1, 2 or 5 times a power of ten, for about 10 ticks
local function step_of(span)
  local raw = span / 10
  local p = 10 ^ floor(math.log(raw, 10))
  for _, m in ipairs({1, 2, 5, 10}) do
    if raw <= m * p then return m * p end
  end
  return 10 * p
end

local function read_trace(path)
  local f, err = io.open(path, "rb")
  if not f then internal.raise("corio.timeline: %s", err) end
  local text = f:read("a")
  f:close()
  -- a trace cut short (the program died): close its array
  if not text:find("%]%s*$") then text = text:gsub(",%s*$", "") .. "]" end
  return decode(text)
end

local function collect(events)
  local tracks, order = {}, {}
  local t0, t1 = huge, -huge
  local function track(tid)
    local t = tracks[tid]
    if not t then
      t = {tid = tid, name = tid == 0 and "main" or ("Task-" .. tid),
           slices = {}}
      tracks[tid] = t
      order[#order + 1] = t
    end
    return t
  end
  for _, e in ipairs(events) do
    if e.ph == "M" and e.name == "thread_name" and e.tid and e.tid < 1e9 then
      local t = track(e.tid)
      t.name = e.args and e.args.name or t.name
      t.group = e.args and e.args.group
    elseif e.ph == "X" and (e.cat == "task" or e.cat == "wait") and
           e.tid < 1e9 then
      local t = track(e.tid)
      t.slices[#t.slices + 1] = {e.ts, e.ts + e.dur, e.cat == "task", e.name}
      if e.ts < t0 then t0 = e.ts end
      if e.ts + e.dur > t1 then t1 = e.ts + e.dur end
    end
  end
  local rows = {}
  for _, t in ipairs(order) do
    if #t.slices > 0 then rows[#rows + 1] = t end
  end
  table.sort(rows, function(a, b) return a.tid < b.tid end)
  if t0 == huge then t0, t1 = 0, 1 end
  if t1 <= t0 then t1 = t0 + 1 end
  return rows, t0, t1
end

-- Past ROWS_MAX tasks: a row per group, in order of first appearance.
local function group(rows)
  local groups, order, ntasks = {}, {}, 0
  for _, t in ipairs(rows) do
    local key = t.tid == 0 and "main" or (t.group or t.name)
    if t.tid ~= 0 then ntasks = ntasks + 1 end
    local g = groups[key]
    if not g then
      if #order >= ROWS_MAX and t.tid ~= 0 then
        key = "other tasks"
        g = groups[key]
      end
      if not g then
        g = {name = key, members = {}, tid = t.tid}
        groups[key] = g
        order[#order + 1] = g
      end
    end
    g.members[#g.members + 1] = t
  end
  return order, ntasks
end

local function render(rows, t0, t1, title)
  local grouped = false
  local ntasks = 0
  for _, t in ipairs(rows) do
    if t.tid ~= 0 then ntasks = ntasks + 1 end
  end
  if ntasks > ROWS_MAX then
    rows = group(rows)
    grouped = true
  end
  local plot = WIDTH - LABEL - 20
  local height = TOP + #rows * (ROW + GAP) + 40
  local span = t1 - t0
  local function x(ts) return LABEL + (ts - t0) / span * plot end
  local out = {}
  local function w(s) out[#out + 1] = s end
  w(format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">',
           WIDTH, height, WIDTH, height))
  w(format('<rect width="%d" height="%d" fill="white"/>', WIDTH, height))
  w(format('<text x="10" y="16" font-size="13" font-weight="bold">%s</text>',
           esc(title)))
  -- the time axis, with a grid line per tick
  local step = step_of(span)
  w('<g class="axis" stroke="#ccc">')
  local tick = 0
  while tick <= span + 1e-9 do
    local px = x(t0 + tick)
    w(format('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>', px, TOP - 6, px,
             height - 34))
    w(format('<text x="%.1f" y="%d" stroke="none" fill="#333" ' ..
             'text-anchor="middle">%s</text>', px, TOP - 10, secs(tick)))
    tick = tick + step
  end
  w('</g>')
  for i, r in ipairs(rows) do
    local y = TOP + (i - 1) * (ROW + GAP)
    local main = r.tid == 0
    local label = r.name
    if grouped and not main then label = format("%s (%d)", r.name, #r.members) end
    w(format('<g class="row %s"><text x="%d" y="%d" text-anchor="end">%s</text>',
             main and "main" or (grouped and "group" or "task"), LABEL - 6,
             y + ROW - 3, esc(label)))
    local run, wait = main and MAIN_RUN or RUN, main and MAIN_WAIT or WAIT
    if not grouped or main then
      -- waits first, so that runs are drawn over them
      for pass = 1, 2 do
        for _, s in ipairs(r.members and r.members[1].slices or r.slices) do
          local is_run = s[3]
          if (pass == 2) == is_run then
            local x0, x1 = x(s[1]), x(s[2])
            local wd = x1 - x0
            if is_run and wd < 1 then wd = 1 end
            w(format('<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s">' ..
                     '<title>%s %s (%s)</title></rect>',
                     x0, y, wd, ROW, is_run and run or wait,
                     is_run and "run" or "wait:", esc(is_run and "" or s[4]),
                     secs(s[2] - s[1])))
          end
        end
      end
    else
      -- per pixel column: 2 some task ran, 1 some waited
      local cols = {}
      for _, m in ipairs(r.members) do
        for _, s in ipairs(m.slices) do
          local c0, c1 = floor(x(s[1]) - LABEL), floor(x(s[2]) - LABEL)
          local v = s[3] and 2 or 1
          for c = c0, c1 do
            if (cols[c] or 0) < v then cols[c] = v end
          end
        end
      end
      local c = 0
      while c <= plot do
        local v = cols[c]
        if v then
          local e = c
          while cols[e + 1] == v do e = e + 1 end
          w(format('<rect x="%d" y="%d" width="%d" height="%d" fill="%s">' ..
                   '<title>%s</title></rect>', LABEL + c, y, e - c + 1, ROW,
                   v == 2 and run or wait,
                   v == 2 and "some of these tasks ran"
                   or "these tasks waited"))
          c = e + 1
        else
          c = c + 1
        end
      end
    end
    w('</g>')
  end
  -- the legend
  local ly = height - 16
  w(format('<rect x="%d" y="%d" width="12" height="10" fill="%s"/>' ..
           '<text x="%d" y="%d">running</text>', LABEL, ly - 9, RUN,
           LABEL + 16, ly))
  w(format('<rect x="%d" y="%d" width="12" height="10" fill="%s"/>' ..
           '<text x="%d" y="%d">waiting (hover for the reason)</text>',
           LABEL + 80, ly - 9, WAIT, LABEL + 96, ly))
  w('</svg>\n')
  return concat(out, "\n")
end

-- corio.timeline(trace_path, svg_path [, title])
local function timeline(trace, svg, title)
  if type(trace) ~= "string" then internal.argerror("corio.timeline", 1, "string", trace) end
  if type(svg) ~= "string" then internal.argerror("corio.timeline", 2, "string", svg) end
  for i, path in ipairs({trace, svg}) do
    if path:find("\0", 1, true) then
      internal.raise("corio.timeline: bad argument #%d: expected a file path (this string holds a NUL byte)", i)
    end
  end
  local rows, t0, t1 = collect(read_trace(trace))
  local n = 0
  for _, r in ipairs(rows) do if r.tid ~= 0 then n = n + 1 end end
  title = title or format("corio: %d task%s over %s", n, n == 1 and "" or "s",
                          secs(t1 - t0))
  local f, err = io.open(svg, "wb")
  if not f then internal.raise("corio.timeline: %s", err) end
  f:write(render(rows, t0, t1, title))
  f:close()
  return n
end

corio.timeline = timeline
internal.timeline = timeline
