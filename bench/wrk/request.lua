-- One fixed request with a method, a body and headers given as arguments:
--   wrk ... -s request.lua URL -- METHOD BODY "Name: value" ...

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "report.lua")

local prepared

function init(args)
  wrk.method = args[1]
  wrk.body = args[2]
  for i = 3, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
  prepared = wrk.format()
end

function request()
  return prepared
end
