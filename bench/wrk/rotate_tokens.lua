-- A GET with a different bearer token each request, from a file of tokens
-- (one a line): wrk ... -s rotate_tokens.lua URL -- FILE START STEP THREADS
-- START is a 0-based index and STEP +1 or -1, so a warm-up can walk the file
-- from its end while the measured run walks it from its start; THREADS is
-- wrk's -t, so that threads interleave instead of repeating each other.

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")

local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local tokens = {}
local position
local stride

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  stride = tonumber(args[3]) * tonumber(args[4])
  position = tonumber(args[2]) + tonumber(args[3]) * thread_index
end

function request()
  local token = tokens[position % #tokens + 1]
  position = position + stride
  return wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. token })
end
