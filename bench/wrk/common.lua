-- Shared by the wrk scripts of bench/tracker_bench.ts: thread bookkeeping, requests taken in
-- turn from `reqs` (which each script's init() fills, setting `turn` to where its thread starts),
-- failures counted when an answer is not HTTP 200 or contains `failure_marker`, and one line
-- `WRK {json}` with the totals at the end.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

reqs = {}
turn = 0
failures = 0

function request()
  turn = turn % #reqs + 1
  return reqs[turn]
end

function response(status, headers, body)
  if status ~= 200 or body:find(failure_marker, 1, true) then
    failures = failures + 1
    if failures == 1 then io.stderr:write("first failure: " .. status .. " " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, t in ipairs(threads) do failed = failed + (t:get("failures") or 0) end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"duration_us":%d,"failures":%d,"connect":%d,"read":%d,"write":%d,' ..
      '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, failed, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
