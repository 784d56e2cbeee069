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

import { parseArgs } from "node:util";
import { main, parsePort, parseSize, UsageError } from "./lib/cli.ts";
import { runSwarm } from "./lib/swarm_runner.ts";

const USAGE = `usage: deno task swarm [options]
options:
  --leechers N        leechers to start (default 3)
  --size SIZE         test file size when it has to be made (default 500MiB)
  --dir DIR           folder for the test file, the copies and logs (default swarm-data)
  --tracker-port P    tracker port (default 8000)
  --base-port P       seeder port; leechers take the next ones (default 9000)
  --keep-running      keep the swarm running after the summary, until Ctrl-C
  --no-dashboard      do not draw the tracker dashboard (logs go to DIR/logs)
  --help              show this help`;

if (import.meta.main) {
  await main(USAGE, async () => {
    let values;
    try {
      ({ values } = parseArgs({
        args: Deno.args,
        strict: true,
        options: {
          leechers: { type: "string", default: "3" },
          size: { type: "string", default: "500MiB" },
          dir: { type: "string", default: "swarm-data" },
          "tracker-port": { type: "string", default: "8000" },
          "base-port": { type: "string", default: "9000" },
          "keep-running": { type: "boolean", default: false },
          "no-dashboard": { type: "boolean", default: false },
          help: { type: "boolean", default: false },
        },
      }));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
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
    const summary = await runSwarm({
      leechers,
      size: parseSize(values.size, "--size"),
      dir: values.dir,
      trackerPort: parsePort(values["tracker-port"], "--tracker-port"),
      basePort,
      keepRunning: values["keep-running"],
      dashboard: !values["no-dashboard"] && Deno.stdout.isTerminal(),
    });
    Deno.exit(summary.identical ? 0 : 1);
  });
}
