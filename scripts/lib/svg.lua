-- Two small SVG charts for the article's results: bars (the comparison of
-- execution models) and lines (seconds against the number of tasks).
-- Plain SVG 1.1 text, readable by any browser; no dependency.
local M = {}

local W, H = 720, 420
local LEFT, RIGHT, TOP, BOTTOM = 70, 30, 50, 60
local COLORS = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"}

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", {["&"] = "&amp;", ["<"] = "&lt;",
                                       [">"] = "&gt;", ['"'] = "&quot;"}))
end

-- A "nice" axis for values up to vmax: a step of 1, 2, 2.5 or 5 times a
-- power of ten giving about five ticks, and the first tick at or above vmax.
local function nice_axis(vmax)
  if vmax <= 0 then return 1, 0.2 end
  local raw = vmax / 5
  local mag = 10 ^ math.floor(math.log(raw, 10))
  local step = 10 * mag
  for _, m in ipairs({1, 2, 2.5, 5}) do
    if raw <= m * mag then step = m * mag break end
  end
  return math.ceil(vmax / step - 1e-9) * step, step
end

local function fmt_num(v)
  if v == math.floor(v) and math.abs(v) < 1e15 then return ("%d"):format(v) end
  return (("%.2f"):format(v):gsub("0+$", ""):gsub("%.$", ""))
end

local function header(out, title)
  out[#out + 1] = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
    .. 'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">'):format(W, H, W, H)
  out[#out + 1] = ('<rect width="%d" height="%d" fill="white"/>'):format(W, H)
  out[#out + 1] = ('<text x="%d" y="28" text-anchor="middle" font-size="16" '
    .. 'font-weight="bold">%s</text>'):format(W / 2, esc(title))
end

-- The y axis with grid lines; returns a function mapping a value to y.
local function y_axis(out, top, step, label)
  local ph = H - TOP - BOTTOM
  local function y(v) return TOP + ph - v / top * ph end
  for v = 0, top + step / 2, step do
    out[#out + 1] = ('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>')
      :format(LEFT, y(v), W - RIGHT, y(v))
    out[#out + 1] = ('<text x="%d" y="%.1f" text-anchor="end">%s</text>')
      :format(LEFT - 6, y(v) + 4, fmt_num(v))
  end
  out[#out + 1] = ('<text transform="translate(18 %d) rotate(-90)" '
    .. 'text-anchor="middle">%s</text>'):format(TOP + ph / 2, esc(label))
  out[#out + 1] = ('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>')
    :format(LEFT, TOP, LEFT, TOP + ph)
  out[#out + 1] = ('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>')
    :format(LEFT, TOP + ph, W - RIGHT, TOP + ph)
  return y
end

local function write(file, out)
  out[#out + 1] = "</svg>\n"
  local f = assert(io.open(file, "w"))
  f:write(table.concat(out, "\n"))
  f:close()
  return file
end

-- bars{title=, ylabel=, bars={{label=, value=, note=}, ...}, file=}
function M.bars(c)
  local out = {}
  header(out, c.title)
  local vmax = 0
  for _, b in ipairs(c.bars) do vmax = math.max(vmax, b.value) end
  local top, step = nice_axis(vmax)
  local y = y_axis(out, top, step, c.ylabel or "")
  local pw = W - LEFT - RIGHT
  local slot = pw / #c.bars
  for i, b in ipairs(c.bars) do
    local x = LEFT + (i - 1) * slot + slot * 0.2
    local bw = slot * 0.6
    out[#out + 1] = ('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>')
      :format(x, y(b.value), bw, y(0) - y(b.value), COLORS[(i - 1) % #COLORS + 1])
    out[#out + 1] = ('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>')
      :format(x + bw / 2, y(b.value) - 6, esc(fmt_num(b.value) .. (c.unit or "")))
    out[#out + 1] = ('<text x="%.1f" y="%d" text-anchor="middle">%s</text>')
      :format(x + bw / 2, H - BOTTOM + 18, esc(b.label))
    if b.note then
      out[#out + 1] = ('<text x="%.1f" y="%d" text-anchor="middle" fill="#666">%s</text>')
        :format(x + bw / 2, H - BOTTOM + 34, esc(b.note))
    end
  end
  return write(c.file, out)
end

-- lines{title=, xlabel=, ylabel=, xs={...}, series={{label=, values={...}}}, file=}
-- The x axis is by position (the article's sizes are 1, 10, 50, ... 300:
-- evenly spaced labels read better than a linear scale squeezing 1 and 10).
function M.lines(c)
  local out = {}
  header(out, c.title)
  local vmax = 0
  for _, s in ipairs(c.series) do
    for _, v in ipairs(s.values) do vmax = math.max(vmax, v) end
  end
  local top, step = nice_axis(vmax)
  local y = y_axis(out, top, step, c.ylabel or "")
  local pw = W - LEFT - RIGHT
  local n = #c.xs
  local function x(i) return LEFT + (n == 1 and pw / 2 or (i - 1) / (n - 1) * (pw - 40) + 20) end
  for i, xv in ipairs(c.xs) do
    out[#out + 1] = ('<text x="%.1f" y="%d" text-anchor="middle">%s</text>')
      :format(x(i), H - BOTTOM + 18, esc(xv))
  end
  out[#out + 1] = ('<text x="%d" y="%d" text-anchor="middle">%s</text>')
    :format(LEFT + pw / 2, H - 16, esc(c.xlabel or ""))
  for k, s in ipairs(c.series) do
    local color = COLORS[(k - 1) % #COLORS + 1]
    local pts = {}
    for i, v in ipairs(s.values) do pts[#pts + 1] = ("%.1f,%.1f"):format(x(i), y(v)) end
    out[#out + 1] = ('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>')
      :format(table.concat(pts, " "), color)
    for i, v in ipairs(s.values) do
      out[#out + 1] = ('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>'):format(x(i), y(v), color)
      if s.notes and s.notes[i] then
        out[#out + 1] = ('<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s">%s</text>')
          :format(x(i), y(v) - 10, color, esc(s.notes[i]))
      end
    end
    out[#out + 1] = ('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>')
      :format(LEFT + 10, TOP + (k - 1) * 18, color)
    out[#out + 1] = ('<text x="%d" y="%d">%s</text>')
      :format(LEFT + 28, TOP + (k - 1) * 18 + 10, esc(s.label))
  end
  return write(c.file, out)
end

return M
