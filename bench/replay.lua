-- wrk script: replay pre-generated requests, one per line: METHOD <tab> PATH <tab> COOKIE <tab> AUTH <tab> BODY,
-- optionally <tab> FORWARDED_FOR (an X-Forwarded-For address: many clients behind the trusted local proxy).
-- Run with one wrk thread (-t1) so every line, and so every single-use code and state, is sent once.
local lines = {}
local i = 0

init = function(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
end

request = function()
  i = i + 1
  if i > #lines then i = 1 end
  local f = {}
  for field in (lines[i] .. "\t"):gmatch("([^\t]*)\t") do f[#f + 1] = field end
  local method, path, cookie, auth, body, forwarded = f[1], f[2], f[3] or "", f[4] or "", f[5] or "", f[6] or ""
  local headers = {}
  if forwarded ~= "" then headers["X-Forwarded-For"] = forwarded end
  if cookie ~= "" then headers["Cookie"] = cookie end
  if auth ~= "" then headers["Authorization"] = auth end
  if body ~= "" then headers["Content-Type"] = "application/json" else body = nil end
  return wrk.format(method, path, headers, body)
end
