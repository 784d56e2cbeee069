/**
 * `deno task fuzz`: throws random and mutated inputs at every parser in-process (wire messages,
 * bencoding, .torrent files, info dictionaries, announce and scrape queries, XML-RPC bodies) and
 * at the live endpoints of a real tracker and a real seeder, then prints per target how many
 * inputs it tried, how many were cleanly rejected or accepted, and how many crashed, and whether
 * every process stayed up. Exits 1 on any crash, 2 on a usage error.
 *
 * Each in-process target runs in a Worker under a watchdog, so an endless loop is reported as a
 * hang with its input instead of stopping the run. The first crashing input of each target is
 * saved as hex in `--out`, and `--replay FILE` runs it again.
 *
 * @example
 * ```sh
 * deno task fuzz --duration 60
 * deno task fuzz --iterations 5000 --seed 7 --json
 * deno task fuzz --replay fuzz-out/xmlrpc-seed1.hex
 * ```
 * @module
 */

import {
  FatalError,
  main,
  parseCount,
  parseOptions,
  parseSeconds,
  systemReason,
  UsageError,
} from "../lib/cli.ts";
import {
  bytesToHex,
  crashReason,
  fuzzIsolated,
  hexToBytes,
  makeTargets,
  TARGET_NAMES,
} from "../lib/fuzz.ts";
import { type EndpointReport, fuzzLive, type LiveReport, LiveSwarm } from "../lib/fuzz_live.ts";

const USAGE = `usage: deno task fuzz [options]
options:
  --seed N            seed of the inputs (default 1); the same seed tries the same inputs
  --duration SECONDS  time for each parser, and for the live endpoints together (default 10)
  --iterations N      inputs per parser and per live endpoint, instead of a duration
  --only LIST         comma-separated targets: ${TARGET_NAMES.join(",")},live (default all)
  --out DIR           where the first crashing input of each target is saved (default fuzz-out)
  --replay FILE       run one saved input (FILE named TARGET-….hex) through its parser again
  --json              print one JSON object as the last line`;

interface Row {
  target: string;
  tried: number;
  rejected: number;
  accepted: number;
  crashes: number;
}

function table(rows: Row[]): string {
  const head = ["target", "inputs tried", "rejected", "accepted", "crashes"];
  const cells = rows.map((r) => [
    r.target,
    String(r.tried),
    String(r.rejected),
    String(r.accepted),
    String(r.crashes),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  ");
  return [line(head), ...cells.map(line)].join("\n");
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

async function save(out: string, name: string, seed: number, input: Uint8Array): Promise<string> {
  await Deno.mkdir(out, { recursive: true });
  const path = `${out}/${slug(name)}-seed${seed}.hex`;
  await Deno.writeTextFile(path, bytesToHex(input) + "\n");
  return path;
}

async function replay(path: string): Promise<void> {
  let hex: string;
  try {
    hex = await Deno.readTextFile(path);
  } catch (e) {
    throw new FatalError(`cannot read ${path}: ${systemReason(e)}`, { cause: e });
  }
  const file = path.split("/").pop()!;
  const target = (await makeTargets()).find((t) => file.startsWith(`${t.name}-`));
  if (!target) {
    throw new UsageError(
      `${file} does not start with a target name (${TARGET_NAMES.join(", ")}); live inputs ` +
        "cannot be replayed in-process",
    );
  }
  let input: Uint8Array;
  try {
    input = hexToBytes(hex);
  } catch {
    throw new UsageError(`${path} does not hold hex`);
  }
  const t0 = performance.now();
  try {
    const outcome = await target.run(input);
    const ms = performance.now() - t0;
    console.log(`${target.name}: ${input.length} bytes ${outcome} in ${ms.toFixed(1)} ms`);
  } catch (e) {
    console.log(`${target.name}: ${input.length} bytes crashed: ${crashReason(e)}`);
    console.error(e);
    Deno.exit(1);
  }
}

if (import.meta.main) {
  await main(USAGE, async () => {
    const { values } = parseOptions({
      args: Deno.args,
      strict: true,
      options: {
        seed: { type: "string", default: "1" },
        duration: { type: "string" },
        iterations: { type: "string" },
        only: { type: "string" },
        out: { type: "string", default: "fuzz-out" },
        replay: { type: "string" },
        json: { type: "boolean", default: false },
      },
    });
    if (values.replay !== undefined) return await replay(values.replay);
    const seed = parseCount(values.seed, "--seed", 0, Number.MAX_SAFE_INTEGER);
    if (values.duration !== undefined && values.iterations !== undefined) {
      throw new UsageError("give --duration or --iterations, not both");
    }
    const iterations = values.iterations === undefined
      ? undefined
      : parseCount(values.iterations, "--iterations", 1, 1e9);
    const durationMs = iterations !== undefined
      ? undefined
      : parseSeconds(values.duration ?? "10", "--duration") * 1000;
    const all = [...TARGET_NAMES, "live"];
    const only = values.only === undefined ? all : values.only.split(",").map((s) => s.trim());
    const unknown = only.filter((t) => !all.includes(t));
    if (unknown.length > 0) {
      throw new UsageError(`unknown target ${unknown[0]}; choose from ${all.join(", ")}`);
    }
    const budget = iterations !== undefined
      ? `${iterations} inputs each`
      : `${durationMs! / 1000} s each`;
    console.log(`fuzz: seed ${seed}, ${budget}; targets ${only.join(", ")}`);

    const rows: Row[] = [];
    for (const name of TARGET_NAMES.filter((t) => only.includes(t))) {
      const r = await fuzzIsolated(name, { seed, iterations, durationMs });
      rows.push({
        target: r.target,
        tried: r.tried,
        rejected: r.rejected,
        accepted: r.accepted,
        crashes: r.crashes,
      });
      let note = `  ${name}: ${r.tried} inputs, ${r.crashes} crashes, slowest ${
        r.slowestMs.toFixed(0)
      } ms`;
      if (r.firstCrash) {
        const path = await save(values.out, name, seed, r.firstCrash.input);
        note += `; first crash (${r.firstCrash.reason}) saved to ${path}`;
      }
      console.log(note);
    }

    let live: LiveReport | undefined;
    const liveErrors: EndpointReport[] = [];
    if (only.includes("live")) {
      console.log("  live: starting a tracker and a seeder");
      const swarm = await LiveSwarm.start();
      try {
        live = await fuzzLive(swarm, { seed, iterations, durationMs });
      } finally {
        await swarm.stop();
      }
      for (const e of live.endpoints) {
        rows.push({
          target: e.endpoint,
          tried: e.tried,
          rejected: e.rejected,
          accepted: e.accepted,
          crashes: e.errors,
        });
        if (e.firstError) {
          liveErrors.push(e);
          const path = await save(values.out, `live ${e.endpoint}`, seed, e.firstError.input);
          console.log(`  ${e.endpoint}: first error (${e.firstError.reason}) saved to ${path}`);
        }
      }
      for (const p of live.processes) {
        for (const l of p.stderr.slice(0, 5)) console.log(`  ${p.name} stderr: ${l}`);
      }
    }

    console.log("");
    console.log(table(rows));
    const crashes = rows.reduce((s, r) => s + r.crashes, 0);
    const tried = rows.reduce((s, r) => s + r.tried, 0);
    const dead = live?.processes.filter((p) => !p.up) ?? [];
    const noisy = live?.processes.filter((p) => p.stderr.length > 0) ?? [];
    let status: string;
    if (!live) status = `${tried} inputs, ${crashes} crashes (no live processes fuzzed)`;
    else if (dead.length === 0) {
      status = `${tried} inputs, ${crashes} crashes; every process stayed up (` +
        live.processes.map((p) => p.name).join(", ") +
        `; ${live.checks} liveness checks passed)`;
    } else {
      status = `${tried} inputs, ${crashes} crashes; DIED: ` +
        dead.map((p) => `${p.name} (${p.how})`).join(", ");
    }
    if (noisy.length > 0) {
      status += `; stderr output from ${noisy.map((p) => p.name).join(", ")}`;
    }
    console.log(status);
    if (values.json) {
      console.log(JSON.stringify({
        seed,
        iterations: iterations ?? null,
        duration_s: durationMs === undefined ? null : durationMs / 1000,
        targets: rows,
        processes: live?.processes.map((p) => ({ name: p.name, up: p.up, how: p.how })) ?? [],
        checks: live?.checks ?? 0,
        crashes,
      }));
    }
    if (crashes > 0 || dead.length > 0 || noisy.length > 0) Deno.exit(1);
  });
}
