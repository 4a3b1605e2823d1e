-- internal.lua: helpers the other Lua parts share (option checks worded as
-- the C functions word theirs, in lopts.c).  Loaded first; see lchunks.c.
local corio, internal = ...

local type, pairs, tostring, error = type, pairs, tostring, error
local format = string.format
local mtype = math.type

-- Raise with a plain message, as luaL_error from a C function does.
local function raise(fmt, ...)
  error(format(fmt, ...), 0)
end
internal.raise = raise

-- opts (nil or a table) checked against the names allowed; returns a table.
function internal.options(fn, opts, names)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    raise("%s: options must be a table, not a %s", fn, type(opts))
  end
  for k in pairs(opts) do
    if type(k) ~= "string" then
      raise("%s: option names are strings (got a %s key)", fn, type(k))
    end
    if not names[k] then raise("%s: unknown option '%s'", fn, k) end
  end
  return opts
end

-- A value in an argument error, as luaL_typeerror shows it (with the value
-- itself for numbers and strings, which say more than their type).
local function describe(v)
  if type(v) == "string" then return format("%q", v) end
  if type(v) == "number" or v == nil then return tostring(v) end
  return type(v)
end
internal.describe = describe

-- Raise "bad argument #n to 'fname' (expected, got v)" at the caller of the
-- function that checks (level 3: the checker, the function, its caller).
local function argerror(fname, n, expected, v)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname,
               expected, describe(v)), 3)
end
internal.argerror = argerror

-- The option's value, after a check: `expected` says what it must be.
local function bad(fn, name, expected, v)
  raise("%s: option '%s' must be %s (got %s)", fn, name, expected, describe(v))
end
internal.bad_option = bad

function internal.positive_integer(fn, name, v, default)
  if v == nil then return default end
  if mtype(v) == "float" and v == v // 1 and v >= 1 and v < 2 ^ 53 then
    v = math.tointeger(v)
  end
  if mtype(v) ~= "integer" or v < 1 then
    bad(fn, name, "a positive integer", v)
  end
  return v
end

function internal.boolean(fn, name, v, default)
  if v == nil then return default end
  if type(v) ~= "boolean" then bad(fn, name, "a boolean", v) end
  return v
end
