-- wrk script: replay.lua, and count the answers by status and API error code ("503 overloaded").
-- Printed by done() as "CODE <status> <error> <count>" lines that bench/run.py reads.
-- Usage: wrk -t1 -cN -s bench/codes.lua URL -- LINES_FILE
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "replay.lua")

local threads = {}
counts = {}

setup = function(thread)
  table.insert(threads, thread)
end

response = function(status, headers, body)
  local key = tostring(status)
  if status >= 400 then
    key = key .. " " .. (body:match('"error"%s*:%s*"([^"]+)"') or "-")
  end
  counts[key] = (counts[key] or 0) + 1
end

done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("counts")) do
      io.write(string.format("CODE %s %d\n", key, count))
    end
  end
end
