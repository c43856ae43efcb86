-- wrk script for bench/serve.sh: cycles over a list of repository-relative
-- paths (one per line), so every request names a different object.
--   wrk -t2 -c64 -d10s -s serve-wrk.lua http://HOST:PORT -- LISTFILE PREFIX
-- PREFIX is "/bench/" (nginx over the store folder) or "/api/nix/bench/".
-- done() prints one machine-readable RESULT line for serve.sh.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local reqs, n, i = {}, 0, 0
function init(args)
  local list, prefix = args[1], args[2]
  if not list or not prefix then error("usage: -- LISTFILE PREFIX") end
  for line in io.lines(list) do
    if line ~= "" then
      n = n + 1
      reqs[n] = wrk.format("GET", prefix .. line)
    end
  end
  if n == 0 then error("empty list " .. list) end
  -- threads start at different places of the list
  i = ((tid or 0) * 7919) % n
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
