/**
 * `deno task bench:tracker`: how many requests per second the real tracker process answers on
 * loopback, in two phases measured separately: BitTorrent announces (`GET /announce`, compact,
 * numwant=50, from hundreds of distinct peers, so every answer carries 50 peers) and XML-RPC
 * calls from registered peers (`swarm.reportProgress` by default, or `swarm.listPeers`).
 *
 * The load comes from `wrk` (Debian's package: `apt-get install wrk`), a separate C process
 * driven by the Lua scripts in `bench/wrk/`, so the load generator is not the bottleneck; the
 * bench prints the CPU both processes used, to show which one was. The tracker is started with
 * `--torrent` of a small generated .torrent, so announces are valid from the first.
 *
 * @example
 * ```sh
 * deno task bench:tracker                      # 50 clients, 20 s per phase
 * deno task bench:tracker --clients 100 --seconds 10 --json
 * ```
 * @module
 */

import { FatalError, main, parseCount, parseOptions, UsageError } from "../lib/cli.ts";
import { toHex } from "../lib/hash.ts";
import { hashFile, toTorrent } from "../lib/metainfo.ts";
import { entryPath, freePort, readLines, waitForPort } from "../lib/process.ts";
import { writeTestFile } from "../lib/test_file.ts";
import { TrackerClient } from "../lib/tracker_client.ts";
import { serializeMethodCall } from "../lib/xmlrpc.ts";

const USAGE = `usage: deno task bench:tracker [options]
options:
  --clients N     concurrent connections (default 50)
  --seconds N     seconds each phase is measured (default 20)
  --warmup N      seconds of unmeasured load before each phase (default 2)
  --peers N       distinct peers announcing (default 400; the tracker keeps at most 1000)
  --registered N  peers registered over XML-RPC whose tokens the calls use (default 50)
  --rpc METHOD    report (swarm.reportProgress, default) or list (swarm.listPeers)
  --threads N     wrk threads (default 1: the tracker has one JavaScript thread to itself)
  --json          print one JSON line at the end: {"announce_per_s":…, "xmlrpc_per_s":…, …}
  --v8-flags F    V8 flags for the tracker, e.g. --perf-basic-prof to profile it with
                  \`perf record -g -p PID\` (its PID is printed)

Needs wrk (apt-get install wrk).`;

const HOST = "127.0.0.1";
/** The generated file: 512 pieces, so bitfields are as long as a 500 MiB file's at 1 MiB. */
const FILE_SIZE = 8 << 20;
const PIECE_LENGTH = 16 << 10;
/** Announcing peers use ports from here; registered peers from REGISTERED_PORT. */
const ANNOUNCE_PORT = 30000;
const REGISTERED_PORT = 20000;
const TICKS = 100; // USER_HZ on Linux
const WRK_DIR = new URL("./wrk/", import.meta.url).pathname;

interface Options {
  clients: number;
  seconds: number;
  warmup: number;
  peers: number;
  registered: number;
  rpc: "report" | "list";
  threads: number;
  json: boolean;
  v8Flags: string | undefined;
}

/** What one wrk run reports (its `WRK {…}` line). */
interface WrkResult {
  requests: number;
  duration_us: number;
  failures: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
}

interface Phase {
  perSecond: number;
  requests: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  trackerCpu: number;
  wrkCpu: number;
}

function parse(argv: string[]): Options {
  const { values } = parseOptions({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      clients: { type: "string", default: "50" },
      seconds: { type: "string", default: "20" },
      warmup: { type: "string", default: "2" },
      peers: { type: "string", default: "400" },
      registered: { type: "string", default: "50" },
      rpc: { type: "string", default: "report" },
      threads: { type: "string", default: "1" },
      json: { type: "boolean", default: false },
      "v8-flags": { type: "string" },
    },
  });
  const rpc = values.rpc;
  if (rpc !== "report" && rpc !== "list") throw new UsageError("--rpc must be report or list");
  const o: Options = {
    clients: parseCount(values.clients, "--clients", 1, 10000),
    seconds: parseCount(values.seconds, "--seconds", 1, 3600),
    warmup: parseCount(values.warmup, "--warmup", 0, 600),
    peers: parseCount(values.peers, "--peers", 1, 900),
    registered: parseCount(values.registered, "--registered", 1, 99),
    rpc,
    threads: parseCount(values.threads, "--threads", 1, 64),
    json: values.json,
    v8Flags: values["v8-flags"],
  };
  if (o.peers % o.threads !== 0) {
    throw new UsageError("--peers must be a multiple of --threads (each thread has its own)");
  }
  if (o.clients < o.threads) throw new UsageError("--clients must be at least --threads");
  return o;
}

/**
 * CPU seconds (user + system) a process has used so far; undefined once it is gone. Read with
 * `cat`, since Deno lets a script read another process's /proc entries only with --allow-all.
 */
async function cpuSeconds(pid: number): Promise<number | undefined> {
  const out = await new Deno.Command("cat", {
    args: [`/proc/${pid}/stat`],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success) return undefined;
  const stat = new TextDecoder().decode(out.stdout);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** The 1-minute load average: other work on the machine skews every figure. */
async function loadAverage(): Promise<string> {
  try {
    const out = await new Deno.Command("cat", { args: ["/proc/loadavg"], stdout: "piped" })
      .output();
    return new TextDecoder().decode(out.stdout).split(" ")[0] || "?";
  } catch {
    return "?";
  }
}

async function requireWrk(): Promise<void> {
  let ok = false;
  try {
    ok = (await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" })
      .output()).code <= 1; // wrk --version prints its usage and exits 1
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new FatalError(
      "wrk is missing: this bench uses it as the load generator; install it with `apt-get install wrk`",
    );
  }
}

/** %-encodes every byte, as BitTorrent clients do for info_hash. */
function pct(bytes: Uint8Array): string {
  return [...bytes].map((b) => "%" + b.toString(16).padStart(2, "0").toUpperCase()).join("");
}

/**
 * Runs wrk for `seconds` against `url` with `script` and its arguments; meanwhile measures the
 * CPU the tracker and wrk use over the middle of the run (both sampled 0.5 s after the start
 * and 0.5 s before the end), as a fraction of one core.
 */
async function runWrk(
  o: Options,
  url: string,
  script: string,
  args: string[],
  seconds: number,
  trackerPid: number,
): Promise<{ result: WrkResult; trackerCpu: number; wrkCpu: number }> {
  const child = new Deno.Command("wrk", {
    args: [
      "-t",
      String(o.threads),
      "-c",
      String(o.clients),
      "-d",
      `${seconds}s`,
      "--timeout",
      "10s",
      "-s",
      `${WRK_DIR}${script}`,
      url,
      "--",
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out: string[] = [];
  const err: string[] = [];
  const reading = Promise.all([
    readLines(child.stdout, (l) => out.push(l)),
    readLines(child.stderr, (l) => err.push(l)),
  ]);
  let trackerCpu = NaN;
  let wrkCpu = NaN;
  if (seconds >= 2) {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await sleep(500);
    const t0 = performance.now();
    const [tr0, wk0] = [await cpuSeconds(trackerPid), await cpuSeconds(child.pid)];
    await sleep(seconds * 1000 - 1000);
    const [tr1, wk1] = [await cpuSeconds(trackerPid), await cpuSeconds(child.pid)];
    const wall = (performance.now() - t0) / 1000;
    if (tr0 !== undefined && tr1 !== undefined) trackerCpu = (tr1 - tr0) / wall;
    if (wk0 !== undefined && wk1 !== undefined) wrkCpu = (wk1 - wk0) / wall;
  }
  const status = await child.status;
  await reading;
  const line = out.find((l) => l.startsWith("WRK "));
  if (!status.success || line === undefined) {
    throw new FatalError(`wrk failed (exit ${status.code}): ${[...err, ...out].join(" / ")}`);
  }
  for (const l of err) console.error(`wrk: ${l}`);
  return { result: JSON.parse(line.slice(4)) as WrkResult, trackerCpu, wrkCpu };
}

function summarise(r: WrkResult, trackerCpu: number, wrkCpu: number): Phase {
  const errors = r.failures + r.connect + r.read + r.write + r.status + r.timeout;
  return {
    perSecond: r.requests / (r.duration_us / 1e6),
    requests: r.requests,
    errors,
    p50Ms: r.p50_us / 1000,
    p99Ms: r.p99_us / 1000,
    trackerCpu,
    wrkCpu,
  };
}

function report(name: string, p: Phase, target: number): string {
  const cpu = (x: number) => (Number.isNaN(x) ? "?" : `${Math.round(x * 100)}%`);
  return `${name.padEnd(10)} ${Math.round(p.perSecond).toString().padStart(7)} req/s ` +
    `(${p.requests} requests, ${p.errors} errors; latency p50 ${p.p50Ms.toFixed(2)} ms, ` +
    `p99 ${p.p99Ms.toFixed(2)} ms; CPU: tracker ${cpu(p.trackerCpu)}, wrk ${cpu(p.wrkCpu)} ` +
    `of a core) — target ${target}/s ${p.perSecond >= target ? "met" : "MISSED"}`;
}

async function bench(o: Options): Promise<void> {
  await requireWrk();
  const dir = await Deno.makeTempDir({ prefix: "tracker-bench-" });
  let tracker: Deno.ChildProcess | undefined;
  try {
    const file = `${dir}/bench.iso`;
    await writeTestFile(file, FILE_SIZE, { seed: 3 });
    const meta = await hashFile(file, { pieceLength: PIECE_LENGTH });
    const port = freePort();
    const url = `http://${HOST}:${port}/`;
    await Deno.writeFile(`${file}.torrent`, toTorrent(meta, `${url}announce`));

    tracker = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--allow-net",
        "--allow-read",
        ...(o.v8Flags ? [`--v8-flags=${o.v8Flags}`] : []),
        entryPath("tracker"),
        "--host",
        HOST,
        "--port",
        String(port),
        // Registered peers must outlive both phases without reporting on their own.
        "--interval",
        "600",
        "--torrent",
        `${file}.torrent`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const trackerErrors: string[] = [];
    readLines(tracker.stderr, (l) => trackerErrors.push(l));
    try {
      await waitForPort(HOST, port, 30_000);
    } catch (e) {
      throw new FatalError(`the tracker did not start: ${trackerErrors.join(" / ")}`, { cause: e });
    }
    console.log(
      `tracker bench: ${o.clients} connections, ${o.seconds} s per phase after ${o.warmup} s ` +
        `of warm-up; ${o.peers} announcing peers, ${o.registered} registered over XML-RPC; ` +
        `wrk with ${o.threads} thread(s); ${navigator.hardwareConcurrency} cores, load average ` +
        `${await loadAverage()} before starting; tracker pid ${tracker.pid}`,
    );

    // Phase 1: announces.
    const announceArgs = [
      pct(meta.infoHash),
      String(o.peers / o.threads),
      String(ANNOUNCE_PORT),
      String(meta.length),
    ];
    if (o.warmup > 0) {
      await runWrk(o, url, "announce.lua", announceArgs, o.warmup, tracker.pid);
    }
    const a = await runWrk(o, url, "announce.lua", announceArgs, o.seconds, tracker.pid);
    const announce = summarise(a.result, a.trackerCpu, a.wrkCpu);

    // Phase 2: XML-RPC calls by registered peers, serialised as our peers' client does.
    const client = new TrackerClient(url);
    const bitfieldBytes = Math.ceil(meta.pieceCount / 8);
    const bodies: string[] = [];
    for (let i = 0; i < o.registered; i++) {
      const id = new Uint8Array(20);
      crypto.getRandomValues(id);
      const { token } = await client.register({
        host: HOST,
        port: REGISTERED_PORT + i,
        peerId: toHex(id),
        role: "leecher",
      });
      for (let v = 0; v < 4; v++) {
        // Half the pieces, different ones per call; never all, so nobody turns seeder.
        const bits = new Uint8Array(bitfieldBytes).fill(v % 2 ? 0xaa : 0x55);
        const call = o.rpc === "report"
          ? serializeMethodCall(
            "swarm.reportProgress",
            [token, bits, (i + 1) * 1_000_000 + v, (i + 1) * 2_000_000 + v],
          )
          : serializeMethodCall("swarm.listPeers", [token]);
        bodies.push(call.replaceAll("\n", ""));
      }
    }
    const bodyFile = `${dir}/xmlrpc-bodies.txt`;
    await Deno.writeTextFile(bodyFile, bodies.join("\n") + "\n");
    if (o.warmup > 0) await runWrk(o, url, "xmlrpc.lua", [bodyFile], o.warmup, tracker.pid);
    const x = await runWrk(o, url, "xmlrpc.lua", [bodyFile], o.seconds, tracker.pid);
    const xmlrpc = summarise(x.result, x.trackerCpu, x.wrkCpu);

    console.log(report("announce", announce, 12000));
    console.log(
      report(`XML-RPC ${o.rpc === "report" ? "reportProgress" : "listPeers"}`, xmlrpc, 3000),
    );
    if (trackerErrors.length > 0) console.error(`tracker stderr: ${trackerErrors.join(" / ")}`);
    if (o.json) {
      console.log(JSON.stringify({
        announce_per_s: Math.round(announce.perSecond),
        xmlrpc_per_s: Math.round(xmlrpc.perSecond),
        announce_errors: announce.errors,
        xmlrpc_errors: xmlrpc.errors,
        xmlrpc_method: o.rpc === "report" ? "swarm.reportProgress" : "swarm.listPeers",
        tracker_cpu: { announce: round2(announce.trackerCpu), xmlrpc: round2(xmlrpc.trackerCpu) },
        wrk_cpu: { announce: round2(announce.wrkCpu), xmlrpc: round2(xmlrpc.wrkCpu) },
        clients: o.clients,
        seconds: o.seconds,
      }));
    }
  } finally {
    if (tracker) {
      try {
        tracker.kill("SIGKILL");
      } catch {
        // already gone
      }
      await tracker.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}

function round2(x: number): number | null {
  return Number.isNaN(x) ? null : Math.round(x * 100) / 100;
}

if (import.meta.main) await main(USAGE, () => bench(parse(Deno.args)));
