/**
 * `deno task swarm`: a whole local swarm in one command: the tracker with its dashboard, one
 * seeder and N leechers; waits until every copy is complete and byte-identical, then prints a
 * summary and stops everything.
 *
 * @example
 * ```sh
 * deno task swarm --leechers 5 --size 64MiB
 * ```
 * @module
 */

import {
  FatalError,
  main,
  parseOptions,
  parsePort,
  parseRate,
  parseSize,
  UsageError,
} from "./lib/cli.ts";
import { freeDescriptors, swarmFdNeeds, swarmFdProblem } from "./lib/fd_limit.ts";
import { runSwarm, type SwarmOptions } from "./lib/swarm_runner.ts";

const USAGE = `usage: deno task swarm [options]
options:
  --leechers N        leechers to start (default 3)
  --size SIZE         test file size when it has to be made (default 500MiB)
  --dir DIR           folder for the test file, the copies and logs (default swarm-data)
  --tracker-port P    tracker port (default 8000)
  --base-port P       seeder port; leechers take the next ones (default 9000)
  --mode MODE         p2p (default) or client-server (leechers download from the seeder
                      only and upload nothing), to compare the two
  --seed-up RATE      cap the seeder's upload, e.g. 8MiB/s (default: uncapped)
  --peer-up RATE      cap each leecher's upload, e.g. 4MiB/s (default: uncapped)
  --peer-down RATE    cap each leecher's download (default: uncapped)
  --piece-length SIZE piece size the seeder hashes with (default 1MiB)
  --keep-running      keep the swarm running after the summary, until Ctrl-C
  --no-dashboard      do not draw the tracker dashboard (logs go to DIR/logs)
  --help              show this help`;

if (import.meta.main) {
  await main(USAGE, async () => {
    const { values } = parseOptions({
      args: Deno.args,
      strict: true,
      options: {
        leechers: { type: "string", default: "3" },
        size: { type: "string", default: "500MiB" },
        dir: { type: "string", default: "swarm-data" },
        "tracker-port": { type: "string", default: "8000" },
        "base-port": { type: "string", default: "9000" },
        "keep-running": { type: "boolean", default: false },
        mode: { type: "string", default: "p2p" },
        "seed-up": { type: "string" },
        "peer-up": { type: "string" },
        "peer-down": { type: "string" },
        "piece-length": { type: "string" },
        "no-dashboard": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      return;
    }
    const leechers = Number(values.leechers);
    if (!Number.isInteger(leechers) || leechers < 1 || leechers > 40) {
      throw new UsageError("--leechers must be a whole number from 1 to 40");
    }
    const basePort = parsePort(values["base-port"], "--base-port");
    if (basePort + leechers > 65535) {
      throw new UsageError("--base-port leaves no room for leechers");
    }
    const mode = values.mode;
    if (mode !== "p2p" && mode !== "client-server") {
      throw new UsageError("--mode must be p2p or client-server");
    }
    const rate = (v: string | undefined, flag: string) =>
      v === undefined ? undefined : parseRate(v, flag);
    const options: SwarmOptions = {
      mode,
      seedUp: rate(values["seed-up"], "--seed-up"),
      peerUp: rate(values["peer-up"], "--peer-up"),
      peerDown: rate(values["peer-down"], "--peer-down"),
      pieceLength: values["piece-length"] === undefined
        ? undefined
        : parseSize(values["piece-length"], "--piece-length"),
      leechers,
      size: parseSize(values.size, "--size"),
      dir: values.dir,
      trackerPort: parsePort(values["tracker-port"], "--tracker-port"),
      basePort,
      keepRunning: values["keep-running"],
      dashboard: !values["no-dashboard"] && Deno.stdout.isTerminal(),
    };
    // Every process started inherits this open-files limit: say so before starting anything
    // rather than have a peer fail to accept mid-run.
    const needs = swarmFdNeeds(leechers);
    const fdProblem = swarmFdProblem(
      leechers,
      freeDescriptors(Math.max(needs.runner, needs.peer)),
    );
    if (fdProblem) throw new FatalError(fdProblem);
    const summary = await runSwarm(options);
    Deno.exit(summary.identical ? 0 : 1);
  });
}
