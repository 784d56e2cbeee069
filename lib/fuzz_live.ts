/**
 * Fuzzing the live endpoints: the real `tracker.ts` and a real seeder (`peer.ts`) run as child
 * processes on 127.0.0.1, and mutated inputs from {@linkcode InputGenerator} go to them over real
 * sockets: query strings to `GET /announce` and `GET /scrape`, XML-RPC bodies `POST`ed to `/`,
 * and raw bytes to the seeder's peer port, each on a fresh TCP connection. After every batch both
 * processes must still be running and still answer a valid XML-RPC call and a valid BitTorrent
 * handshake correctly.
 *
 * A clear answer to a bad input is a bencoded `failure reason`, an XML-RPC fault, or a closed
 * connection; an HTTP 500, an answer in no format, or no answer within the time limit is an
 * error. Traffic goes only to the two processes started here, on loopback, and every loop is
 * bounded in count or time.
 *
 * @example
 * ```ts
 * import { fuzzLive, LiveSwarm } from "./fuzz_live.ts";
 * const swarm = await LiveSwarm.start();
 * try {
 *   const report = await fuzzLive(swarm, { seed: 1, iterations: 200 });
 *   console.log(report.endpoints, report.processes);
 * } finally {
 *   await swarm.stop();
 * }
 * ```
 * @module
 */

import { type BValue, decode } from "./bencode.ts";
import { bytesEqual } from "./hash.ts";
import {
  type Crash,
  FuzzRng,
  type FuzzTarget,
  InputGenerator,
  latin1Bytes,
  latin1String,
  makeTargets,
} from "./fuzz.ts";
import { fromInfo, type Metainfo } from "./metainfo.ts";
import { freePort, readLines, spawnEntry, waitForPort } from "./process.ts";
import { writeTestFile } from "./test_file.ts";
import { TrackerClient } from "./tracker_client.ts";
import { encodeHandshake, makePeerId, WireDecoder } from "./wire.ts";
import { parseMethodResponse, XmlRpcFault } from "./xmlrpc.ts";

const HOST = "127.0.0.1";
/** Longest a started process may take to come up (first runs compile and cache modules). */
const START_TIMEOUT_MS = 30_000;
/** Longest any single request or liveness check may take before it counts as no answer. */
const ANSWER_TIMEOUT_MS = 10_000;
/** Lines of output kept per process, for the report when one dies. */
const KEEP_LINES = 40;

/** One child process under fuzzing, its exit and its last lines of output. */
export class LiveProcess {
  /** Last lines of stdout. */
  readonly stdout: string[] = [];
  /** Every stderr line (a healthy tracker or seeder writes none). */
  readonly stderr: string[] = [];
  /** The exit status once it exited. */
  exit: Deno.CommandStatus | undefined;
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<unknown>;
  readonly #waiters = new Set<() => void>();

  /** Wraps a child started with piped stdout and stderr. */
  constructor(readonly name: string, child: Deno.ChildProcess) {
    this.#child = child;
    const status = child.status.then((s) => (this.exit = s));
    const keep = (into: string[], limit: number) => (line: string) => {
      into.push(line);
      if (into.length > limit) into.shift();
      for (const w of [...this.#waiters]) w();
    };
    this.#done = Promise.all([
      status,
      readLines(child.stdout, keep(this.stdout, KEEP_LINES)),
      readLines(child.stderr, keep(this.stderr, 1000)),
    ]).finally(() => {
      for (const w of [...this.#waiters]) w();
    });
  }

  /** The OS process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** True while it runs. */
  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Resolves when a stdout line matches `re`; rejects if it exits first or after `ms`. */
  waitForLine(re: RegExp, ms = START_TIMEOUT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${this.name}: no ${re} in ${ms} ms`)), ms);
      const finish = (e?: Error) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (e) reject(e);
        else resolve();
      };
      const check = () => {
        if (this.stdout.some((l) => re.test(l))) finish();
        else if (!this.alive) {
          finish(new Error(`${this.name} exited before printing ${re}: ${this.describe()}`));
        }
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** How it ended (or that it runs) and its last stderr line, for reports. */
  describe(): string {
    const how = this.exit
      ? `exited with ${this.exit.signal ?? `code ${this.exit.code}`}`
      : "running";
    const err = this.stderr.at(-1);
    return err ? `${how}; stderr: ${err}` : how;
  }

  /** SIGTERM, SIGKILL after 5 s, then waits for the exit and the pipes. */
  async stop(): Promise<void> {
    if (this.alive) {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // It exited meanwhile.
      }
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, 5000);
    try {
      await this.#done;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A real tracker and a real seeder of a small file, on free ports of 127.0.0.1. */
export class LiveSwarm {
  private constructor(
    readonly dir: string,
    readonly tracker: LiveProcess,
    readonly seeder: LiveProcess,
    readonly trackerPort: number,
    readonly seederPort: number,
    readonly meta: Metainfo,
  ) {}

  /** The tracker's XML-RPC URL. */
  get trackerUrl(): string {
    return `http://${HOST}:${this.trackerPort}/`;
  }

  /** Both processes. */
  get processes(): LiveProcess[] {
    return [this.tracker, this.seeder];
  }

  /**
   * Writes a 1 MiB file with a short last piece into a temporary directory, starts the tracker
   * and a seeder of it, and waits until the seeder has published the metainfo.
   */
  static async start(): Promise<LiveSwarm> {
    const dir = await Deno.makeTempDir({ prefix: "swarm-fuzz-" });
    const started: LiveProcess[] = [];
    try {
      await writeTestFile(`${dir}/seed.bin`, (1 << 20) + 12345, { seed: 7 });
      const trackerPort = freePort();
      const tracker = new LiveProcess(
        "tracker",
        spawnEntry("tracker", ["--host", HOST, "--port", String(trackerPort)]),
      );
      started.push(tracker);
      await tracker.waitForLine(/^tracker listening on /);
      await waitForPort(HOST, trackerPort, START_TIMEOUT_MS);
      const seederPort = freePort();
      const seeder = new LiveProcess(
        "seeder",
        spawnEntry("peer", [
          HOST,
          String(seederPort),
          "true",
          "--tracker",
          `http://${HOST}:${trackerPort}/`,
          "--dir",
          dir,
          "--file",
          "seed.bin",
          "--piece-length",
          "64KiB",
          "--quiet",
        ]),
      );
      started.push(seeder);
      await seeder.waitForLine(/^Seeding /);
      const { info } = await new TrackerClient(`http://${HOST}:${trackerPort}/`).getMetainfo();
      const meta = await fromInfo(info);
      return new LiveSwarm(dir, tracker, seeder, trackerPort, seederPort, meta);
    } catch (e) {
      for (const p of started) await p.stop();
      await Deno.remove(dir, { recursive: true });
      throw e;
    }
  }

  /**
   * Checks that both processes run and answer correctly: `swarm.getMetainfo` names the seeded
   * file, and the seeder answers a handshake with its info-hash. Throws, naming what failed.
   */
  async check(): Promise<void> {
    for (const p of this.processes) {
      if (!p.alive) throw new Error(`the ${p.name} died: ${p.describe()}`);
    }
    const client = new TrackerClient(this.trackerUrl);
    const got = await withTimeout(client.getMetainfo(), "the tracker's swarm.getMetainfo");
    if (got.infoHash !== this.meta.infoHashHex) {
      throw new Error(`the tracker now names info-hash ${got.infoHash}`);
    }
    await withTimeout(this.#handshake(), "the seeder's handshake");
  }

  async #handshake(): Promise<void> {
    const conn = await Deno.connect({ hostname: HOST, port: this.seederPort });
    try {
      await writeAll(conn, encodeHandshake(this.meta.infoHash, makePeerId()));
      const dec = new WireDecoder();
      const buf = new Uint8Array(65536);
      let hs: Uint8Array | undefined;
      while (!hs) {
        const n = await conn.read(buf);
        if (n === null) throw new Error("the seeder closed a valid handshake's connection");
        dec.push(buf.subarray(0, n), (m) => {
          if (m.type === "handshake") hs = m.infoHash;
        });
      }
      if (!bytesEqual(hs, this.meta.infoHash)) throw new Error("the seeder named another swarm");
    } finally {
      conn.close();
    }
  }

  /** Stops both processes and removes the directory. */
  async stop(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop()));
    await Deno.remove(this.dir, { recursive: true });
  }
}

function withTimeout<T>(p: Promise<T>, what: string, ms = ANSWER_TIMEOUT_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** What one endpoint's run found. */
export interface EndpointReport {
  /** `GET /announce`, `GET /scrape`, `POST / (XML-RPC)` or `seeder TCP`. */
  endpoint: string;
  /** Inputs sent. */
  tried: number;
  /** Inputs answered with a clear refusal (failure reason, fault, closed connection). */
  rejected: number;
  /** Inputs answered normally. */
  accepted: number;
  /** Inputs answered with an error page, in no known format, or not at all. */
  errors: number;
  /** The first such input and what was wrong. */
  firstError?: Crash;
}

/** The outcome of a live run. */
export interface LiveReport {
  /** Per endpoint. */
  endpoints: EndpointReport[];
  /** Each process: whether it is still up and answering, and its stderr lines. */
  processes: { name: string; up: boolean; how: string; stderr: string[] }[];
  /** Liveness checks passed (one after every batch). */
  checks: number;
}

/** Options for {@linkcode fuzzLive}. */
export interface LiveOptions {
  /** Seed of the inputs. */
  seed: number;
  /** Inputs per endpoint (default: until `durationMs`). */
  iterations?: number;
  /** How long to go on, in milliseconds; the endpoints are fuzzed at the same time. */
  durationMs?: number;
  /** Inputs per endpoint between liveness checks (default 50). */
  batch?: number;
  /** Requests in flight per endpoint (default 4). */
  concurrency?: number;
  /** How long a TCP input's connection is watched for the seeder closing it (default 100 ms). */
  watchMs?: number;
}

type Verdict = "accepted" | "rejected" | { error: string };

interface Endpoint {
  name: string;
  gen: InputGenerator;
  send(input: Uint8Array): Promise<Verdict>;
}

/** Bytes as the query of a request line: what a URL cannot hold is percent-encoded. */
function asQuery(input: Uint8Array): string {
  let s = "";
  for (const b of input) {
    s += b > 0x20 && b < 0x7f && b !== 0x23 ? String.fromCharCode(b) : `%${hex2(b)}`;
  }
  return s;
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, "0").toUpperCase();
}

/** Judges a bencoded HTTP tracker answer. */
function judgeBencoded(status: number, body: Uint8Array, okKey: string): Verdict {
  if (status !== 200) return { error: `HTTP ${status}: ${latin1String(body.subarray(0, 80))}` };
  let v: BValue;
  try {
    v = decode(body);
  } catch {
    return { error: `not bencoded: ${latin1String(body.subarray(0, 80))}` };
  }
  if (typeof v === "object" && !(v instanceof Uint8Array) && !Array.isArray(v)) {
    if (v["failure reason"] instanceof Uint8Array) return "rejected";
    if (okKey in v) return "accepted";
  }
  return { error: `unexpected answer: ${latin1String(body.subarray(0, 80))}` };
}

const TOKEN_MARK = latin1Bytes("@TOKEN@");

function endpoints(swarm: LiveSwarm, targets: FuzzTarget[], seed: number, watchMs: number) {
  const byName = (n: string) => targets.find((t) => t.name === n)!;
  const gen = (n: string, salt: number) => {
    const t = byName(n);
    return new InputGenerator(t.corpus, t.dialect, new FuzzRng(seed * 16 + salt));
  };
  const base = swarm.trackerUrl;
  const get = (path: string, okKey: string) => async (input: Uint8Array): Promise<Verdict> => {
    const url = `${base}${path.slice(1)}?${asQuery(input)}`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS) });
    } catch (e) {
      return { error: `no answer: ${(e as Error).message}` };
    }
    return judgeBencoded(res.status, new Uint8Array(await res.arrayBuffer()), okKey);
  };
  let token = "";
  const out: Endpoint[] = [
    { name: "GET /announce", gen: gen("announce", 1), send: get("/announce", "interval") },
    { name: "GET /scrape", gen: gen("scrape", 2), send: get("/scrape", "files") },
    {
      name: "POST / (XML-RPC)",
      gen: gen("xmlrpc", 3),
      send: async (input) => {
        let body = input;
        if (latin1String(input).includes("@TOKEN@")) {
          // A token of our own, so mutated calls get past the token check. Registering again
          // each time keeps it valid whatever the last call did (leave, a replaced entry).
          const r = await new TrackerClient(base).register({
            host: HOST,
            port: 1,
            peerId: "f".repeat(40),
            role: "leecher",
          });
          token = r.token;
          body = latin1Bytes(latin1String(input).replaceAll(latin1String(TOKEN_MARK), token));
        }
        let res: Response;
        try {
          res = await fetch(base, {
            method: "POST",
            body: body as Uint8Array<ArrayBuffer>,
            headers: { "content-type": "text/xml" },
            signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
          });
        } catch (e) {
          if (e instanceof DOMException && e.name === "TimeoutError") {
            return { error: "no answer within the time limit" };
          }
          // The server may answer 413 and close before the body is sent: a closed connection.
          return "rejected";
        }
        const text = await res.text();
        try {
          parseMethodResponse(text);
          return "accepted";
        } catch (e) {
          if (e instanceof XmlRpcFault && e.faultString !== "") return "rejected";
          return { error: `HTTP ${res.status}, not an XML-RPC answer: ${text.slice(0, 80)}` };
        }
      },
    },
    {
      name: "seeder TCP",
      gen: gen("wire", 4),
      send: (input) => rawTcp(swarm.seederPort, input, watchMs),
    },
  ];
  return out;
}

const FUZZ_ID = latin1Bytes("-FZ0001-000000000000");

/**
 * Sends `input` on a new connection to the seeder and watches it for `watchMs`: closed by the
 * seeder is a rejection, still open an acceptance.
 */
async function rawTcp(port: number, input: Uint8Array, watchMs: number): Promise<Verdict> {
  // Two fuzz connections with one peer id would be closed as duplicates: make each id unique.
  const bytes = input.slice();
  if (bytes.length >= 68 && bytesEqual(bytes.subarray(48, 68), FUZZ_ID)) {
    bytes.set(makePeerId(), 48);
  }
  const conn = await Deno.connect({ hostname: HOST, port });
  let closed = false;
  const reading = (async () => {
    const buf = new Uint8Array(65536);
    try {
      while ((await conn.read(buf)) !== null) { /* discard what it sends */ }
    } catch {
      // Reset by the seeder: closed too.
    }
    closed = true;
  })();
  try {
    // Some inputs go in two writes, so the seeder also sees messages split across reads.
    const cut = bytes.length > 8 && bytes[bytes.length - 1] % 2 ? bytes.length >> 1 : bytes.length;
    await writeAll(conn, bytes.subarray(0, cut));
    if (cut < bytes.length) await writeAll(conn, bytes.subarray(cut));
  } catch {
    // The seeder closed the connection while we were still writing.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([reading, new Promise((r) => (timer = setTimeout(r, watchMs)))]);
  clearTimeout(timer);
  const closedBySeeder = closed;
  try {
    conn.close();
  } catch {
    // Already closed.
  }
  await reading;
  return closedBySeeder ? "rejected" : "accepted";
}

/**
 * Fuzzes the tracker's `/announce`, `/scrape` and XML-RPC endpoints and the seeder's peer port
 * at the same time, in batches, checking after every batch that both processes are up and
 * answer correctly. Stops early (and says so) when a check fails.
 */
export async function fuzzLive(swarm: LiveSwarm, options: LiveOptions): Promise<LiveReport> {
  const targets = await makeTargets(swarm.meta);
  const eps = endpoints(swarm, targets, options.seed, options.watchMs ?? 100);
  const reports: EndpointReport[] = eps.map((e) => ({
    endpoint: e.name,
    tried: 0,
    rejected: 0,
    accepted: 0,
    errors: 0,
  }));
  const maxN = options.iterations ?? Infinity;
  const deadline = options.durationMs === undefined ? Infinity : Date.now() + options.durationMs;
  if (maxN === Infinity && deadline === Infinity) {
    throw new RangeError("give iterations or durationMs");
  }
  const batch = options.batch ?? 50;
  const concurrency = options.concurrency ?? 4;
  let checks = 0;
  let failure: string | undefined;
  const runBatch = async (e: Endpoint, r: EndpointReport) => {
    const n = Math.min(batch, maxN - r.tried);
    let next = 0;
    const worker = async () => {
      while (next < n) {
        next++;
        const input = e.gen.next();
        r.tried++;
        let v: Verdict;
        try {
          v = await e.send(input);
        } catch (err) {
          v = { error: `${(err as Error).name}: ${(err as Error).message}` };
        }
        if (v === "accepted") {
          r.accepted++;
          e.gen.keep(input);
        } else if (v === "rejected") r.rejected++;
        else {
          r.errors++;
          r.firstError ??= { reason: v.error, input: input.slice() };
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  while (!failure && Date.now() < deadline && reports.some((r) => r.tried < maxN)) {
    await Promise.all(eps.map((e, i) => reports[i].tried < maxN ? runBatch(e, reports[i]) : 0));
    try {
      await swarm.check();
      checks++;
    } catch (e) {
      failure = (e as Error).message;
    }
  }
  return {
    endpoints: reports,
    processes: swarm.processes.map((p) => ({
      name: p.name,
      up: p.alive && (failure === undefined || !failure.includes(p.name)),
      how: failure?.includes(p.name) ? failure : p.describe(),
      stderr: [...p.stderr],
    })),
    checks,
  };
}
