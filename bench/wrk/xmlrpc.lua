-- wrk script for bench/tracker_bench.ts: XML-RPC calls POSTed to /, the bodies read from a
-- file with one call per line (the bench serialises them with the library our peers use, each
-- with the token of a peer it registered). Threads start at different lines.
--
-- wrk -s xmlrpc.lua URL -- BODIES_FILE
-- Prints one line `WRK {json}` with the totals at the end; answers that are not HTTP 200 or
-- carry a <fault> count as failures.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local reqs = {}
local turn = 0
failures = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("POST", "/", { ["Content-Type"] = "text/xml" }, line)
    end
  end
  turn = (id * 7) % #reqs
end

function request()
  turn = turn % #reqs + 1
  return reqs[turn]
end

function response(status, headers, body)
  if status ~= 200 or body:find("<fault>", 1, true) then
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
