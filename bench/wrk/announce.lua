-- wrk script for bench/tracker_bench.ts: GET /announce (BEP 3, compact, numwant=50) from many
-- distinct peers, so the tracker's swarm holds many peers and every answer carries 50 of them.
-- Each thread announces as its own PEERS peers, in turn, on ports FIRST_PORT + peer number;
-- one in five is a seeder (left=0), the others are half done.
--
-- wrk -s announce.lua URL -- INFO_HASH_PERCENT_ENCODED PEERS_PER_THREAD FIRST_PORT LENGTH
-- Prints one line `WRK {json}` with the totals at the end; answers that are not HTTP 200 or
-- carry a `failure reason` count as failures.

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
  local hash, per, first, length = args[1], tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  for k = 0, per - 1 do
    local peer = id * per + k
    local left = (peer % 5 == 0) and 0 or math.floor(length / 2)
    local path = string.format(
      "/announce?info_hash=%s&peer_id=-BN0001-%012d&port=%d&uploaded=%d&downloaded=%d" ..
        "&left=%d&corrupt=0&key=%08X&numwant=50&compact=1&no_peer_id=1&supportcrypto=1",
      hash, peer, first + peer, peer * 1000, length - left, left, peer)
    reqs[#reqs + 1] = wrk.format("GET", path)
  end
end

function request()
  turn = turn % #reqs + 1
  return reqs[turn]
end

function response(status, headers, body)
  if status ~= 200 or body:find("failure reason", 1, true) then
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
