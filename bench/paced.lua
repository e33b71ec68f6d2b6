-- wrk script: replay.lua at a set pace, as independent visitors would arrive. After every answer a
-- connection waits a random time, exponentially distributed with mean PACE_MS (Poisson arrivals), so
-- the connections never fall into step and -c N gives about N / (PACE + latency) requests per second.
-- Usage: wrk -t1 -cN -s bench/paced.lua URL -- LINES_FILE PACE_MS
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "replay.lua")

local pace = 0
local replay_init = init

init = function(args)
  replay_init(args)
  pace = tonumber(args[2])
  math.randomseed(os.time())
end

delay = function()
  return -pace * math.log(1 - math.random())
end
