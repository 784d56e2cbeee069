-- wrk script for bench/tracker_bench.ts: GET /announce (BEP 3, compact, numwant=50) from many
-- distinct peers, so the tracker's swarm holds many peers and every answer carries 50 of them.
-- Each thread announces as its own PEERS peers, in turn, on ports FIRST_PORT + peer number;
-- one in five is a seeder (left=0), the others are half done.
--
-- wrk -s announce.lua URL -- INFO_HASH_PERCENT_ENCODED PEERS_PER_THREAD FIRST_PORT LENGTH
-- Prints one line `WRK {json}` with the totals at the end; answers that are not HTTP 200 or
-- carry a `failure reason` count as failures.

-- The shared part, from beside this file.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
failure_marker = "failure reason"

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
