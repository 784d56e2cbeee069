/**
 * A whole local swarm as `deno task swarm` runs it: the test file (made if missing), the tracker
 * with its dashboard, one seeder and N leechers as separate processes; then it waits for every
 * leecher to finish, checks each copy against the original with SHA-256, prints a summary and
 * stops everything it started (also on Ctrl-C).
 *
 * @example
 * ```ts
 * import { runSwarm } from "./swarm_runner.ts";
 * const summary = await runSwarm({ leechers: 3, size: 64 << 20, dir: "swarm-data" });
 * summary.identical; // true
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { FatalError, formatBytes } from "./cli.ts";
import { downloadName } from "./peer_app.ts";
import { readLines, spawnEntry, waitForPort } from "./process.ts";

/** How to run the swarm. */
export interface SwarmOptions {
  /** Leechers to start (default 3). */
  leechers: number;
  /** Size of the test file when it has to be made. */
  size: number;
  /** Folder for the test file, the copies and the logs. */
  dir: string;
  /** Name of the test file. */
  file?: string;
  /** Tracker port (default 8000). */
  trackerPort?: number;
  /** First peer port: the seeder; leechers take the next ones (default 9000). */
  basePort?: number;
  /** Keep everything running after the summary until Ctrl-C. */
  keepRunning?: boolean;
  /** Show the tracker's dashboard on this terminal (default true). */
  dashboard?: boolean;
  /** Extra arguments for every peer (e.g. --pipeline). */
  peerArgs?: string[];
  /** Where summary lines go (default console.log). */
  log?: (line: string) => void;
}

/** One leecher's result. */
export interface LeecherResult {
  /** `localhost:PORT`. */
  id: string;
  /** Seconds from its start to DOWNLOAD COMPLETE!. */
  seconds: number;
  /** File size / seconds, MB/s. */
  mbPerSecond: number;
  /** Whether its copy's SHA-256 equals the original's. */
  identical: boolean;
}

/** What the swarm run achieved. */
export interface SwarmSummary {
  /** Seconds from the first leecher's start until the last held a complete copy. */
  distributionSeconds: number;
  /** Per-leecher results. */
  leechers: LeecherResult[];
  /** SHA-256 of the original, hex. */
  sha256: string;
  /** True when every copy is byte-identical to the original. */
  identical: boolean;
}

/** Runs the swarm; see the module doc. Throws {@linkcode FatalError} when a part cannot start. */
export async function runSwarm(opts: SwarmOptions): Promise<SwarmSummary> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const file = opts.file ?? "ubuntu-teste.iso";
  const trackerPort = opts.trackerPort ?? 8000;
  const basePort = opts.basePort ?? 9000;
  const host = "localhost";
  const tracker = `http://${host}:${trackerPort}/`;
  const original = `${opts.dir}/${file}`;
  const logDir = `${opts.dir}/logs`;
  await Deno.mkdir(logDir, { recursive: true });

  const children: { name: string; child: Deno.ChildProcess }[] = [];
  const stopAll = async () => {
    for (const { child } of children) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    }
    await Promise.allSettled(children.map(({ child }) => child.status));
  };
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    stopAll().then(() => {
      console.log("\nStopped the swarm (Ctrl-C).");
      Deno.exit(130);
    });
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  try {
    await ensureTestFile(original, opts.size, log);
    for (let i = 1; i <= opts.leechers; i++) {
      await Deno.remove(`${opts.dir}/${downloadName(host, basePort + i, file)}`).catch(() => {});
    }

    const dashboard = opts.dashboard ?? true;
    const trackerChild = spawnEntry("tracker", ["--port", String(trackerPort), "--interval", "1"], {
      stdout: dashboard ? "inherit" : "piped",
      stderr: "piped",
    });
    children.push({ name: "tracker", child: trackerChild });
    const trackerErr = collect(trackerChild.stderr);
    if (!dashboard) logTo(trackerChild.stdout!, `${logDir}/tracker.log`);
    await Promise.race([
      waitForPort(host, trackerPort, 15_000),
      trackerChild.status.then(async () => {
        throw new FatalError(`the tracker could not start: ${(await trackerErr).trim()}`);
      }),
    ]);

    const peerArgs = (port: number, seeder: boolean) => [
      host,
      String(port),
      String(seeder),
      "--tracker",
      tracker,
      "--file",
      file,
      "--dir",
      opts.dir,
      ...(opts.peerArgs ?? []),
    ];
    const seeder = spawnEntry("peer", peerArgs(basePort, true));
    children.push({ name: `${host}:${basePort}`, child: seeder });
    await waitForLine(seeder, `${logDir}/peer-${basePort}.log`, /^Seeding /, "the seeder");

    const started = performance.now();
    const done: Promise<LeecherResult>[] = [];
    for (let i = 1; i <= opts.leechers; i++) {
      const port = basePort + i;
      const t0 = performance.now();
      const child = spawnEntry("peer", peerArgs(port, false));
      const id = `${host}:${port}`;
      children.push({ name: id, child });
      done.push(
        waitForLine(child, `${logDir}/peer-${port}.log`, /^DOWNLOAD COMPLETE!/, id).then(() => {
          const seconds = (performance.now() - t0) / 1000;
          return { id, seconds, mbPerSecond: 0, identical: false };
        }),
      );
    }
    const results = await Promise.all(done);
    const distributionSeconds = (performance.now() - started) / 1000;
    const size = (await Deno.stat(original)).size;
    const sha256 = await sha256File(original);
    for (const r of results) {
      const port = Number(r.id.split(":")[1]);
      r.identical = await sha256File(`${opts.dir}/${downloadName(host, port, file)}`) === sha256;
      r.mbPerSecond = size / 1e6 / r.seconds;
    }
    const summary: SwarmSummary = {
      distributionSeconds,
      leechers: results,
      sha256,
      identical: results.every((r) => r.identical),
    };
    if (dashboard && !opts.keepRunning) {
      // Stop the tracker first so its last frame stays and the summary prints below it.
      trackerChild.kill("SIGTERM");
      await trackerChild.status;
    }
    printSummary(summary, { file, size, leechers: opts.leechers, log });
    if (opts.keepRunning) {
      log("Everything keeps running (--keep-running); press Ctrl-C to stop.");
      await new Promise(() => {});
    }
    return summary;
  } finally {
    if (!interrupted) {
      await stopAll();
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
    }
  }
}

async function ensureTestFile(path: string, size: number, log: (l: string) => void): Promise<void> {
  try {
    await Deno.stat(path);
    return;
  } catch {
    // Missing: make it.
  }
  log(`Making the test file ${path} (${formatBytes(size)})…`);
  const child = spawnEntry("make_file", ["--size", String(size), "--out", path], {
    stdout: "inherit",
    stderr: "inherit",
  });
  const status = await child.status;
  if (!status.success) throw new FatalError(`could not make the test file ${path}`);
}

/** Streams a child's stdout to a log file and resolves when `pattern` appears. */
function waitForLine(
  child: Deno.ChildProcess,
  logPath: string,
  pattern: RegExp,
  who: string,
): Promise<void> {
  const errText = collect(child.stderr);
  return new Promise((resolve, reject) => {
    const file = Deno.openSync(logPath, { write: true, create: true, truncate: true });
    const enc = new TextEncoder();
    let seen = false;
    readLines(child.stdout, (line) => {
      file.writeSync(enc.encode(line + "\n"));
      if (!seen && pattern.test(line)) {
        seen = true;
        resolve();
      }
    }).finally(() => file.close());
    child.status.then(async (s) => {
      if (seen) return;
      const why = (await errText).trim().split("\n").pop() || `exit code ${s.code}`;
      reject(new FatalError(`${who} stopped early: ${why} (log: ${logPath})`));
    });
  });
}

function logTo(stream: ReadableStream<Uint8Array>, path: string): void {
  const file = Deno.openSync(path, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  readLines(stream, (line) => file.writeSync(enc.encode(line + "\n"))).finally(() => file.close());
}

async function collect(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  if (!stream) return "";
  let text = "";
  await readLines(stream, (l) => (text += l + "\n"));
  return text;
}

/** The SHA-256 of a file, hex, read in chunks so memory stays flat. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(4 << 20);
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    hash.update(buf.subarray(0, n));
  }
  return hash.digest("hex");
}

function printSummary(
  s: SwarmSummary,
  ctx: { file: string; size: number; leechers: number; log: (l: string) => void },
): void {
  const { log } = ctx;
  log("");
  log(`Swarm summary: ${ctx.leechers} leecher(s), ${ctx.file}, ${formatBytes(ctx.size)}`);
  for (const r of s.leechers) {
    log(
      `  ${r.id.padEnd(16)} complete in ${r.seconds.toFixed(1).padStart(6)} s  ` +
        `${r.mbPerSecond.toFixed(1).padStart(7)} MB/s  ${r.identical ? "identical" : "DIFFERS"}`,
    );
  }
  log(`Time to full distribution: ${s.distributionSeconds.toFixed(1)} s`);
  log(
    s.identical
      ? `All ${s.leechers.length} copies are byte-identical to the original (SHA-256 ${
        s.sha256.slice(0, 16)
      }…).`
      : "Some copies differ from the original!",
  );
}
