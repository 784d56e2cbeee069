/**
 * Helpers for the process tests: the real `tracker.ts` and `peer.ts` started with
 * {@linkcode spawnEntry} on 127.0.0.1 and free ports, their output awaited line by line (never a
 * sleep standing in for synchronisation), every child killed and awaited on the way out, and
 * files compared byte for byte.
 *
 * @example
 * ```ts
 * import { assertSameFile, Swarm } from "./swarm_helpers.ts";
 * const swarm = await Swarm.create();
 * try {
 *   await swarm.startTracker();
 *   await swarm.startSeeder(3 << 20);
 *   const leecher = swarm.startLeecher();
 *   await leecher.waitForLine(/^DOWNLOAD COMPLETE!/);
 *   await assertSameFile(swarm.copyPath(leecher.port), swarm.seedPath);
 * } finally {
 *   await swarm.close();
 * }
 * ```
 * @module
 */

import { downloadName } from "../lib/peer_app.ts";
import { freePort, readLines, spawnEntry } from "../lib/process.ts";
import { writeTestFile } from "../lib/test_file.ts";
import { AssertionError } from "./assert.ts";

/** Where everything listens. */
export const HOST = "127.0.0.1";
/** The seed file's name. */
export const FILE = "seed.bin";
/** Piece length the seeders hash with: small, so small files have many pieces. */
export const PIECE_LENGTH = 256 * 1024;
/** A few MiB with a short last piece: 12 whole pieces and one of 12345 bytes. */
export const SMALL_SIZE = 3 * 1024 * 1024 + 12345;
/** Generous: a test machine may still be compiling and caching modules on first run. */
export const START_TIMEOUT_MS = 30_000;
/** How long a line may take to appear once its process is up. */
export const LINE_TIMEOUT_MS = 15_000;

/** A running entrypoint whose stdout lines can be awaited. */
export class Proc {
  /** Every stdout line so far. */
  readonly lines: string[] = [];
  /** Exit status once it exited. */
  readonly status: Promise<Deno.CommandStatus>;
  /** True once the process exited. */
  exited = false;
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Promise<void>;
  readonly #stderr: Promise<string>;
  #stderrText = "";
  #eof = false;
  readonly #waiters = new Set<() => void>();

  /** Wraps a child spawned with piped stdout and stderr. */
  constructor(readonly name: string, child: Deno.ChildProcess) {
    this.#child = child;
    this.status = child.status.then((s) => {
      this.exited = true;
      return s;
    });
    this.#stdout = readLines(child.stdout, (line) => {
      this.lines.push(line);
      for (const w of [...this.#waiters]) w();
    }).finally(() => {
      this.#eof = true;
      for (const w of [...this.#waiters]) w();
    });
    this.#stderr = readLines(child.stderr, (line) => (this.#stderrText += line + "\n")).then(
      () => this.#stderrText,
    );
  }

  /** What it wrote to stderr so far. */
  get stderrText(): string {
    return this.#stderrText;
  }

  /**
   * Resolves with the first stdout line at or after index `from` that matches `re`; rejects when
   * stdout ends first or after `timeoutMs`, quoting the output so a failure explains itself.
   */
  waitForLine(re: RegExp, timeoutMs = LINE_TIMEOUT_MS, from = 0): Promise<string> {
    return this.waitFor((l) => re.test(l), String(re), timeoutMs, from);
  }

  /** Like {@linkcode Proc.waitForLine} with any predicate; `what` names it in errors. */
  waitFor(
    test: (line: string) => boolean,
    what: string,
    timeoutMs = LINE_TIMEOUT_MS,
    from = 0,
  ): Promise<string> {
    const found = () => this.lines.slice(from).find(test);
    const now = found();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new AssertionError(
            `${this.name}: no line matching ${what} within ${timeoutMs} ms\n${this.describe()}`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        const line = found();
        if (line !== undefined) {
          done();
          resolve(line);
        } else if (this.#eof) {
          done();
          // Let stderr catch up, so the message says why it stopped.
          this.#stderr.then(() =>
            reject(
              new AssertionError(
                `${this.name}: stdout ended before a line matching ${what}\n${this.describe()}`,
              ),
            )
          );
        }
      };
      this.#waiters.add(check);
    });
  }

  /** The last lines of output and stderr, for failure messages. */
  describe(lastLines = 40): string {
    const out = this.lines.slice(-lastLines).map((l) => `  | ${l}`).join("\n");
    const err = this.#stderrText.trim();
    return `--- ${this.name} stdout (last ${lastLines} lines):\n${out}` +
      (err ? `\n--- ${this.name} stderr:\n${err}` : "");
  }

  /** Sends a signal if the process is still running. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.exited) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Exited meanwhile.
    }
  }

  /** Sends `signal` (if still running), then waits for the exit and for both pipes to drain. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    this.kill(signal);
    const status = await this.status;
    await this.#stdout;
    await this.#stderr;
    return status;
  }
}

/** One test's swarm: a temp directory, ports on 127.0.0.1, and every process started. */
export class Swarm {
  /** Every process started, in order. */
  readonly procs: Proc[] = [];
  /** The tracker's port (fixed for the test, so a restarted tracker takes it again). */
  readonly trackerPort = freePort();
  /** Bytes of the seed file once {@linkcode Swarm.startSeeder} made it. */
  size = 0;

  private constructor(readonly dir: string) {}

  /** Makes the temp directory. */
  static async create(): Promise<Swarm> {
    return new Swarm(await Deno.makeTempDir({ prefix: "swarm_test_" }));
  }

  /** The tracker's URL. */
  get trackerUrl(): string {
    return `http://${HOST}:${this.trackerPort}/`;
  }

  /** The seed file's path. */
  get seedPath(): string {
    return `${this.dir}/${FILE}`;
  }

  /** Where a leecher on `port` writes its copy. */
  copyPath(port: number, dir = this.dir): string {
    return `${dir}/${downloadName(HOST, port, FILE)}`;
  }

  /** Starts the tracker (on {@linkcode Swarm.trackerPort}) and waits for its banner. */
  async startTracker(): Promise<Proc> {
    const p = this.#spawn("tracker", "tracker", [
      "--host",
      HOST,
      "--port",
      String(this.trackerPort),
      "--interval",
      "1",
    ]);
    await p.waitForLine(/^tracker listening on /, START_TIMEOUT_MS);
    return p;
  }

  /**
   * Writes a seed file of `size` bytes (unless one is there) and starts a seeder on a free port;
   * resolves once it prints `Seeding `, i.e. has published the metainfo.
   */
  async startSeeder(size = SMALL_SIZE, extra: string[] = []): Promise<Peer> {
    if (this.size === 0) {
      await writeTestFile(this.seedPath, size, { seed: 7 });
      this.size = size;
    }
    const port = freePort();
    const p = this.#spawn("peer", `seeder ${port}`, [
      ...this.peerArgs(port, true),
      "--piece-length",
      "256KiB",
      ...extra,
    ]);
    const peer = Object.assign(p, { port });
    await p.waitForLine(/^Seeding /, START_TIMEOUT_MS);
    return peer;
  }

  /** Starts a leecher on a free port (does not wait for anything). */
  startLeecher(extra: string[] = [], name = "leecher"): Peer {
    const port = freePort();
    const p = this.#spawn("peer", `${name} ${port}`, [...this.peerArgs(port, false), ...extra]);
    return Object.assign(p, { port });
  }

  /** The arguments of a peer on `port`. */
  peerArgs(port: number, seeder: boolean, dir = this.dir): string[] {
    return [
      HOST,
      String(port),
      String(seeder),
      "--tracker",
      this.trackerUrl,
      "--dir",
      dir,
      "--file",
      FILE,
    ];
  }

  /** Starts any entrypoint with piped output, to be stopped by {@linkcode Swarm.close}. */
  spawn(entry: "tracker" | "peer", name: string, args: string[]): Proc {
    return this.#spawn(entry, name, args);
  }

  /** SIGKILLs whatever is still running, awaits every process, removes the directory. */
  async close(): Promise<void> {
    // SIGTERM first so peers leave cleanly; SIGKILL anything that does not go within 5 s.
    await Promise.all(this.procs.map(async (p) => {
      p.kill("SIGTERM");
      const timer = setTimeout(() => p.kill("SIGKILL"), 5000);
      try {
        await p.stop();
      } finally {
        clearTimeout(timer);
      }
    }));
    await Deno.remove(this.dir, { recursive: true });
  }

  #spawn(entry: "tracker" | "peer", name: string, args: string[]): Proc {
    const p = new Proc(name, spawnEntry(entry, args));
    this.procs.push(p);
    return p;
  }
}

/** A peer process and the port it listens on. */
export type Peer = Proc & { port: number };

/**
 * Throws {@linkcode AssertionError} unless the files at `actual` and `expected` hold the same
 * bytes, naming the first offset where they differ.
 */
export async function assertSameFile(actual: string, expected: string): Promise<void> {
  using a = await Deno.open(actual, { read: true });
  using b = await Deno.open(expected, { read: true });
  const [sa, sb] = [(await a.stat()).size, (await b.stat()).size];
  if (sa !== sb) throw new AssertionError(`${actual} is ${sa} bytes, ${expected} is ${sb}`);
  const bufA = new Uint8Array(1 << 20);
  const bufB = new Uint8Array(1 << 20);
  for (let off = 0; off < sa;) {
    const n = Math.min(bufA.length, sa - off);
    await readFull(a, bufA.subarray(0, n));
    await readFull(b, bufB.subarray(0, n));
    for (let i = 0; i < n; i++) {
      if (bufA[i] !== bufB[i]) {
        throw new AssertionError(
          `${actual} differs from ${expected} at byte ${off + i} (piece ${
            Math.floor((off + i) / PIECE_LENGTH)
          })`,
        );
      }
    }
    off += n;
  }
}

async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const n = await file.read(buf.subarray(off));
    if (n === null) throw new AssertionError("file shorter than its size");
    off += n;
  }
}

/** Polls `check` every 50 ms until it returns true; rejects after `timeoutMs`. */
export async function pollUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = LINE_TIMEOUT_MS,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new AssertionError(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * How many pieces of `original` the file at `path` already holds, judged by the first 64 bytes
 * of each piece (a leecher's file starts as zeros and the test data is random). 0 when the file
 * does not exist yet. Cheap enough to poll every few milliseconds.
 */
export function piecesOnDisk(
  path: string,
  original: Uint8Array,
  pieceLength = PIECE_LENGTH,
): number {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  try {
    const buf = new Uint8Array(64);
    let n = 0;
    for (let at = 0; at < original.length; at += pieceLength) {
      const want = original.subarray(at, Math.min(at + 64, original.length));
      file.seekSync(at, Deno.SeekMode.Start);
      let got = 0;
      while (got < want.length) {
        const r = file.readSync(buf.subarray(got, want.length));
        if (r === null) break;
        got += r;
      }
      if (got === want.length && want.every((b, i) => buf[i] === b)) n++;
    }
    return n;
  } finally {
    file.close();
  }
}

/**
 * How many pieces of the file at `path` are byte-for-byte those of `original`: what a resumed
 * leecher's scan must find. (A SIGKILL can cut a piece's write short, so a piece whose head is
 * on disk is not necessarily whole.)
 */
export async function piecesIntact(
  path: string,
  original: Uint8Array,
  pieceLength = PIECE_LENGTH,
): Promise<number> {
  const copy = await Deno.readFile(path);
  let n = 0;
  for (let at = 0; at < original.length; at += pieceLength) {
    const end = Math.min(at + pieceLength, original.length);
    let same = end <= copy.length;
    for (let i = at; same && i < end; i++) same = copy[i] === original[i];
    if (same) n++;
  }
  return n;
}

/** A run of `n` consecutive ports on 127.0.0.1 that were all free a moment ago. */
export function freePortRange(n: number): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    const held: Deno.Listener[] = [];
    try {
      for (let i = 0; i < n; i++) held.push(Deno.listen({ hostname: HOST, port: base + i }));
      return base;
    } catch {
      // One is taken: try elsewhere.
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error(`no ${n} consecutive free ports found`);
}

/**
 * What a stopped peer printed about each remote peer on leaving: `label → bytes received`.
 * (`  127.0.0.1:9001: received 3.0 MiB, sent 0 B`.)
 */
export function receivedFrom(lines: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const at = lines.findIndex((l) => l.startsWith("Leaving the swarm"));
  if (at < 0) return out;
  for (const l of lines.slice(at + 1)) {
    const m = /^ {2}(\S+): received (.+), sent (.+)$/.exec(l);
    if (m && !/^0 B$/.test(m[2])) out.set(m[1], m[2]);
  }
  return out;
}
