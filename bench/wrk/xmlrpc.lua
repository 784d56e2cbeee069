-- wrk script for bench/tracker_bench.ts: XML-RPC calls POSTed to /, the bodies read from a
-- file with one call per line (the bench serialises them with the library our peers use, each
-- with the token of a peer it registered). Threads start at different lines.
--
-- wrk -s xmlrpc.lua URL -- BODIES_FILE
-- Prints one line `WRK {json}` with the totals at the end; answers that are not HTTP 200 or
-- carry a <fault> count as failures.

-- The shared part, from beside this file.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")
failure_marker = "<fault>"

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      reqs[#reqs + 1] = wrk.format("POST", "/", { ["Content-Type"] = "text/xml" }, line)
    end
  end
  turn = (id * 7) % #reqs
end
