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
  /** "p2p" (default): leechers share; "client-server": leechers only download from the seeder. */
  mode?: "p2p" | "client-server";
  /** The seeder's upload cap, bytes/s. */
  seedUp?: number;
  /** Each leecher's upload cap, bytes/s. */
  peerUp?: number;
  /** Each leecher's download cap, bytes/s. */
  peerDown?: number;
  /** Piece length the seeder hashes with. */
  pieceLength?: number;
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
  /** Bytes it uploaded (known once it stopped; undefined with --keep-running). */
  uploaded?: number;
  /** Its average upload rate from its start to the end of the distribution, bytes/s. */
  uploadRate?: number;
  /** Seconds from the release of the leechers to this one's start (0: released together). */
  startOffset: number;
  /** Everything it reported as it stopped. */
  stats?: PeerStatsLine;
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
  /** What the seeder reported as it stopped (not with --keep-running). */
  seeder?: PeerStatsLine;
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

    const rate = (n: number | undefined, flag: string) => n ? [flag, `${n}`] : [];
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
      ...(seeder ? rate(opts.seedUp, "--up-rate") : rate(opts.peerUp, "--up-rate")),
      ...(seeder ? [] : rate(opts.peerDown, "--down-rate")),
      ...(seeder && opts.pieceLength ? ["--piece-length", String(opts.pieceLength)] : []),
      ...(!seeder && opts.mode === "client-server" ? ["--client-server"] : []),
      ...(opts.peerArgs ?? []),
    ];
    const seeder = spawnEntry("peer", peerArgs(basePort, true));
    children.push({ name: `${host}:${basePort}`, child: seeder });
    const seederWatch = watchPeer(
      seeder,
      `${logDir}/peer-${basePort}.log`,
      [/^Seeding /],
      "the seeder",
    );
    await seederWatch.seen[0];

    // Start every leecher held at the gate, then release them together: the clock measures the
    // distribution, not how long a 2-core machine takes to start N processes.
    const leechers: { id: string; port: number; child: Deno.ChildProcess; ready: Promise<void> }[] =
      [];
    const done: Promise<LeecherResult>[] = [];
    const stats = new Map<string, Promise<PeerStatsLine | undefined>>();
    let started = 0;
    for (let i = 1; i <= opts.leechers; i++) {
      const port = basePort + i;
      const child = spawnEntry("peer", [...peerArgs(port, false), "--hold"], { stdin: "piped" });
      const id = `${host}:${port}`;
      children.push({ name: id, child });
      const watch = watchPeer(child, `${logDir}/peer-${port}.log`, [
        /^READY/,
        /^DOWNLOAD COMPLETE!/,
      ], id);
      stats.set(id, watch.stats);
      leechers.push({ id, port, child, ready: watch.seen[0] });
      done.push(watch.seen[1].then(() => {
        const seconds = (performance.now() - started) / 1000;
        return { id, seconds, mbPerSecond: 0, identical: false, startOffset: 0 };
      }));
    }
    await Promise.all(leechers.map((l) => l.ready));
    started = performance.now();
    const go = new TextEncoder().encode("go\n");
    for (const l of leechers) {
      const w = l.child.stdin.getWriter();
      await w.write(go);
      await w.close();
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
    if (!opts.keepRunning) {
      // Stop the tracker first so its last frame stays and the summary prints below it; then
      // the peers, which print what they uploaded as they leave.
      trackerChild.kill("SIGTERM");
      await trackerChild.status;
      for (const { name, child } of children) if (name !== "tracker") child.kill("SIGTERM");
      for (const r of results) {
        const st = await stats.get(r.id);
        if (st) {
          r.stats = st;
          r.uploaded = st.uploaded;
          r.uploadRate = st.uploaded / Math.max(0.001, distributionSeconds - r.startOffset);
        }
      }
      summary.seeder = await seederWatch.stats;
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

/** The `STATS {...}` line a peer prints as it stops. */
export interface PeerStatsLine {
  /** Bytes of blocks it uploaded. */
  uploaded: number;
  /** Bytes of verified pieces it downloaded. */
  downloaded: number;
  /** Milliseconds it ran. */
  runMs: number;
  /** Milliseconds from its start to its first verified piece (null: none). */
  firstPieceMs: number | null;
  /** Milliseconds from its start to its complete copy (null: never). */
  completeMs: number | null;
  /**
   * Milliseconds during which some connected peer was interested in its pieces, i.e. it had
   * something to upload (absent from peers older than this field).
   */
  interestedMs?: number;
}

/** Parses a peer's `STATS {...}` line; undefined for any other line. */
export function parseStatsLine(line: string): PeerStatsLine | undefined {
  if (!line.startsWith("STATS ")) return undefined;
  try {
    const v = JSON.parse(line.slice(6));
    return typeof v?.uploaded === "number" && typeof v?.runMs === "number" ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Streams a child's stdout to a log file; `seen[i]` resolves when `patterns[i]` first appears
 * (and rejects if the child exits first), `stats` when the child exits, with its STATS line if
 * it printed one.
 */
function watchPeer(
  child: Deno.ChildProcess,
  logPath: string,
  patterns: RegExp[],
  who: string,
): { seen: Promise<void>[]; stats: Promise<PeerStatsLine | undefined> } {
  const errText = collect(child.stderr);
  let stats: PeerStatsLine | undefined;
  const file = Deno.openSync(logPath, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  const waits = patterns.map((pattern) => {
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Whoever awaits it handles a rejection; an unawaited one must not crash the runner.
    promise.catch(() => {});
    return { pattern, seen: false, promise, resolve, reject };
  });
  child.status.then(async (s) => {
    if (waits.every((w) => w.seen)) return;
    const why = (await errText).trim().split("\n").pop() || `exit code ${s.code}`;
    for (const w of waits) {
      if (!w.seen) w.reject(new FatalError(`${who} stopped early: ${why} (log: ${logPath})`));
    }
  });
  const reading = readLines(child.stdout, (line) => {
    file.writeSync(enc.encode(line + "\n"));
    stats = parseStatsLine(line) ?? stats;
    for (const w of waits) {
      if (!w.seen && w.pattern.test(line)) {
        w.seen = true;
        w.resolve();
      }
    }
  }).finally(() => file.close());
  return { seen: waits.map((w) => w.promise), stats: reading.then(() => stats) };
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
    const up = r.uploadRate === undefined
      ? ""
      : `  uploaded at ${(r.uploadRate / 1e6).toFixed(1)} MB/s`;
    log(
      `  ${r.id.padEnd(16)} complete in ${r.seconds.toFixed(1).padStart(6)} s  ` +
        `${r.mbPerSecond.toFixed(1).padStart(7)} MB/s  ${
          r.identical ? "identical" : "DIFFERS"
        }${up}`,
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
