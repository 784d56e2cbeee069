/**
 * Fuzzing the parsers in-process: a seeded input generator that mutates small corpora of valid
 * inputs (bit flips, inserted and deleted bytes, spliced chunks, numbers swapped for huge or
 * negative ones, truncation, repeated chunks, nesting bombs, giant declared lengths), one
 * target per parser, and a loop that runs a target and sorts every input into accepted, cleanly
 * rejected, or a crash.
 *
 * A parser passes an input when it returns a value or throws the error type it documents
 * (`WireError`, `BencodeError`, `MetainfoError`, `AnnounceError`, an XML-RPC fault). Anything
 * else is a crash: another exception (a `TypeError` is a bug), a `RangeError` from a blown stack
 * or an impossible allocation, a non-Error throw, an input that takes longer than `hangMs`, or a
 * broken invariant (the wire decoder must re-encode to exactly the bytes it consumed, whatever
 * the chunking; a decoded bencoding must re-encode to its input).
 *
 * Everything is reproducible from the seed. No sockets or files: the XML-RPC target drives the
 * tracker's real request handler with `Request` objects.
 *
 * @example
 * ```ts
 * import { fuzzTarget, makeTargets } from "./fuzz.ts";
 * for (const target of await makeTargets()) {
 *   const r = await fuzzTarget(target, { seed: 1, iterations: 2000 });
 *   console.log(r.target, r.tried, r.rejected, r.accepted, r.crashes);
 * }
 * ```
 * @module
 */

import {
  AnnounceError,
  encodeAnnounceResponse,
  encodeScrapeResponse,
  parseAnnounce,
  parseScrape,
} from "./announce.ts";
import { BencodeError, type BValue, concat, decode, decodeWithSpan, encode } from "./bencode.ts";
import { toHex } from "./hash.ts";
import {
  fromInfo,
  makeMetainfo,
  type Metainfo,
  MetainfoError,
  parseTorrent,
  toTorrent,
} from "./metainfo.ts";
import { Registry, RegistryError } from "./registry.ts";
import { Xoshiro128pp } from "./test_file.ts";
import { FaultCode, Methods } from "./tracker_api.ts";
import { trackerMethods } from "./tracker_methods.ts";
import {
  encodeHandshake,
  encodeMessage,
  type Handshake,
  HANDSHAKE_LENGTH,
  MAX_REQUEST_LENGTH,
  type Message,
  WireDecoder,
  WireError,
} from "./wire.ts";
import { parseMethodResponse, XmlRpcFault } from "./xmlrpc.ts";
import { MAX_BODY_BYTES, XmlRpcHttpServer } from "./xmlrpc_server.ts";

const te = new TextEncoder();
const utf8 = new TextDecoder();

/** ASCII (or latin1) text as bytes, one byte per character. */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** Bytes as a latin1 string, one character per byte. */
export function latin1String(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) {
    s += String.fromCharCode(...b.subarray(i, i + 4096));
  }
  return s;
}

/** Lower-case hex of any length of bytes (the format crash inputs are saved in). */
export function bytesToHex(b: Uint8Array): string {
  return toHex(b);
}

/** Parses {@linkcode bytesToHex} output (whitespace ignored), to replay a saved crash. */
export function hexToBytes(hex: string): Uint8Array {
  const h = hex.replace(/\s+/g, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(h)) throw new RangeError("not an even-length hex string");
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The fuzzer's random numbers: xoshiro128++ from {@linkcode Xoshiro128pp}, so runs replay. */
export class FuzzRng {
  readonly #x: Xoshiro128pp;

  /** Seeds the generator (a non-negative safe integer). */
  constructor(seed: number) {
    this.#x = new Xoshiro128pp(seed);
  }

  /** A uniform integer from 0 to `n - 1` (`n` at most 2^32). */
  int(n: number): number {
    return Math.floor(this.#x.next() / 2 ** 32 * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.#x.next() / 2 ** 32 < p;
  }

  /** One element of a non-empty array. */
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.#x.next() & 0xff;
    return out;
  }

  /** A size skewed towards small values: mostly under 16, sometimes up to `max`. */
  size(max: number): number {
    const r = this.int(100);
    if (r < 70) return 1 + this.int(Math.min(max, 16));
    if (r < 95) return 1 + this.int(Math.min(max, 512));
    return 1 + this.int(max);
  }
}

/** What the mutators know about an input format. */
export interface Dialect {
  /** Longest input the generator makes (inputs are cut to it). */
  maxLength: number;
  /** Numbers are ASCII text (bencoding, query strings, XML) rather than binary. */
  textNumbers: boolean;
  /** Pieces worth inserting: keywords, delimiters, escapes, well-formed fragments. */
  tokens: readonly Uint8Array[];
  /** Declared lengths far beyond the input (`99999999999:`, a 4 GiB length prefix). */
  giants: readonly Uint8Array[];
  /** A nesting bomb `depth` levels deep (`llll…`), or undefined when the format has no nesting. */
  bomb?: (depth: number) => Uint8Array;
}

/** Numbers that break parsers: huge, negative, leading zeros, just past a power of two. */
export const INTERESTING_NUMBERS: readonly string[] = [
  "0",
  "-0",
  "00",
  "01",
  "-1",
  "-99999999999",
  "255",
  "256",
  "65535",
  "65536",
  "2147483647",
  "2147483648",
  "4294967295",
  "4294967296",
  "9007199254740991",
  "9007199254740993",
  "18446744073709551616",
  "99999999999",
  "999999999999999999999999999999999999",
  "1e308",
  "1.5",
  "NaN",
  "0x10",
];

/** 32-bit values that break binary length fields and indices. */
export const INTERESTING_U32: readonly number[] = [
  0,
  1,
  4,
  5,
  13,
  0x7f,
  0x80,
  0xff,
  0x3fff,
  0x4000,
  0x4001,
  0x20000,
  MAX_REQUEST_LENGTH + 9,
  MAX_REQUEST_LENGTH + 10,
  0x7fffffff,
  0x80000000,
  0xfffffffe,
  0xffffffff,
];

const INTERESTING_BYTES = [0, 1, 0x13, 0x20, 0x7f, 0x80, 0xfe, 0xff];

type Mutator = (input: Uint8Array, rng: FuzzRng, g: InputGenerator) => Uint8Array;

function insertAt(input: Uint8Array, at: number, piece: Uint8Array): Uint8Array {
  return concat([input.subarray(0, at), piece, input.subarray(at)]);
}

function replaceRange(input: Uint8Array, from: number, to: number, piece: Uint8Array): Uint8Array {
  return concat([input.subarray(0, from), piece, input.subarray(to)]);
}

/** The digit runs (with a leading minus) of an input, as [start, end) pairs. */
function numberRuns(input: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < input.length; i++) {
    const digit = input[i] >= 0x30 && input[i] <= 0x39;
    if (!digit) continue;
    let start = i;
    if (start > 0 && input[start - 1] === 0x2d) start--;
    while (i < input.length && input[i] >= 0x30 && input[i] <= 0x39) i++;
    runs.push([start, i]);
  }
  return runs;
}

const MUTATORS: { name: string; weight: number; fn: Mutator }[] = [
  {
    name: "flip bits",
    weight: 10,
    fn: (input, rng) => {
      if (input.length === 0) return input;
      const out = input.slice();
      for (let n = 1 + rng.int(4); n > 0; n--) out[rng.int(out.length)] ^= 1 << rng.int(8);
      return out;
    },
  },
  {
    name: "set byte",
    weight: 6,
    fn: (input, rng) => {
      if (input.length === 0) return input;
      const out = input.slice();
      out[rng.int(out.length)] = rng.chance(0.5) ? rng.pick(INTERESTING_BYTES) : rng.int(256);
      return out;
    },
  },
  {
    name: "insert bytes",
    weight: 6,
    fn: (input, rng) => insertAt(input, rng.int(input.length + 1), rng.bytes(rng.size(64))),
  },
  {
    name: "delete bytes",
    weight: 8,
    fn: (input, rng) => {
      if (input.length === 0) return input;
      const at = rng.int(input.length);
      return replaceRange(input, at, Math.min(input.length, at + rng.size(64)), new Uint8Array());
    },
  },
  {
    name: "insert token",
    weight: 10,
    fn: (input, rng, g) => {
      const t = rng.pick(g.dialect.tokens);
      if (input.length > 0 && rng.chance(0.4)) {
        const at = rng.int(input.length);
        return replaceRange(input, at, Math.min(input.length, at + t.length), t);
      }
      return insertAt(input, rng.int(input.length + 1), t);
    },
  },
  {
    name: "splice",
    weight: 8,
    fn: (input, rng, g) => {
      const other = g.pickSeed();
      if (other.length === 0) return input;
      const from = rng.int(other.length);
      const chunk = other.subarray(from, Math.min(other.length, from + rng.size(256)));
      if (rng.chance(0.5)) return insertAt(input, rng.int(input.length + 1), chunk);
      // Crossover: this input's head, the other's tail.
      return concat([input.subarray(0, rng.int(input.length + 1)), other.subarray(from)]);
    },
  },
  {
    name: "replace number",
    weight: 10,
    fn: (input, rng, g) => {
      if (!g.dialect.textNumbers) {
        if (input.length < 4) return input;
        const out = input.slice();
        const at = rng.int(out.length - 3);
        new DataView(out.buffer).setUint32(at, rng.pick(INTERESTING_U32));
        return out;
      }
      const runs = numberRuns(input);
      if (runs.length === 0) return input;
      const [from, to] = rng.pick(runs);
      return replaceRange(input, from, to, latin1Bytes(rng.pick(INTERESTING_NUMBERS)));
    },
  },
  {
    name: "truncate",
    weight: 6,
    fn: (input, rng) => input.subarray(0, rng.int(input.length + 1)),
  },
  {
    name: "repeat chunk",
    weight: 4,
    fn: (input, rng, g) => {
      if (input.length === 0) return input;
      const at = rng.int(input.length);
      const chunk = input.subarray(at, Math.min(input.length, at + rng.size(32)));
      const times = rng.chance(0.8) ? 2 + rng.int(8) : 2 + rng.int(5000);
      const n = Math.min(times, Math.floor(g.dialect.maxLength / chunk.length));
      const rep = new Uint8Array(chunk.length * n);
      for (let i = 0; i < n; i++) rep.set(chunk, i * chunk.length);
      return insertAt(input, at, rep);
    },
  },
  {
    name: "nesting bomb",
    weight: 3,
    fn: (input, rng, g) => {
      if (!g.dialect.bomb) return input;
      const depth = rng.pick([31, 32, 33, 34, 64, 100, 1000, 10_000, 100_000]);
      return insertAt(input, rng.int(input.length + 1), g.dialect.bomb(depth));
    },
  },
  {
    name: "giant length",
    weight: 4,
    fn: (input, rng, g) => {
      const giant = rng.pick(g.dialect.giants);
      if (input.length > 0 && rng.chance(0.5)) {
        const at = rng.int(input.length);
        return replaceRange(input, at, Math.min(input.length, at + giant.length), giant);
      }
      return insertAt(input, rng.int(input.length + 1), giant);
    },
  },
];

const TOTAL_WEIGHT = MUTATORS.reduce((s, m) => s + m.weight, 0);

/**
 * Makes inputs for one target: mostly 1 to 6 stacked mutations of a corpus entry (or of an
 * earlier accepted input), sometimes plain random bytes or a bare nesting bomb.
 */
export class InputGenerator {
  readonly #corpus: readonly Uint8Array[];
  /** Accepted inputs kept as further seeds, so mutations can go deeper than the corpus. */
  readonly #pool: Uint8Array[] = [];
  #poolNext = 0;

  /** A generator over `corpus` (at least one entry) for inputs of `dialect`. */
  constructor(corpus: readonly Uint8Array[], readonly dialect: Dialect, readonly rng: FuzzRng) {
    if (corpus.length === 0) throw new RangeError("the corpus needs at least one input");
    this.#corpus = corpus;
  }

  /** A corpus entry or a kept accepted input. */
  pickSeed(): Uint8Array {
    if (this.#pool.length > 0 && this.rng.chance(0.3)) return this.rng.pick(this.#pool);
    return this.rng.pick(this.#corpus);
  }

  /** Offers an accepted input as a seed for later mutations (some are kept, up to 256). */
  keep(input: Uint8Array): void {
    if (input.length > 4096 || !this.rng.chance(0.05)) return;
    if (this.#pool.length < 256) this.#pool.push(input);
    else this.#pool[this.#poolNext++ % 256] = input;
  }

  /** The next input. */
  next(): Uint8Array {
    const r = this.rng.int(100);
    let out: Uint8Array;
    if (r < 3) out = this.rng.bytes(this.rng.size(1024));
    else if (r < 5 && this.dialect.bomb) {
      out = this.dialect.bomb(this.rng.pick([33, 1000, 100_000]));
    } else {
      out = this.pickSeed();
      const n = 1 + Math.min(5, Math.floor(-Math.log2(1 - this.rng.int(1 << 16) / 65536)));
      for (let i = 0; i < n; i++) out = this.#mutator()(out, this.rng, this);
    }
    return out.length > this.dialect.maxLength ? out.subarray(0, this.dialect.maxLength) : out;
  }

  #mutator(): Mutator {
    let w = this.rng.int(TOTAL_WEIGHT);
    for (const m of MUTATORS) {
      if ((w -= m.weight) < 0) return m.fn;
    }
    return MUTATORS[0].fn;
  }
}

/** How a parser took an input it did not crash on. */
export type Outcome = "accepted" | "rejected";

/** One parser under test. */
export interface FuzzTarget {
  /** Short name for tables and file names. */
  readonly name: string;
  /** What is fuzzed, in a few words. */
  readonly description: string;
  /** Valid (and a few nearly valid) inputs to mutate. */
  readonly corpus: readonly Uint8Array[];
  /** The format's mutation hints. */
  readonly dialect: Dialect;
  /**
   * Parses one input: `"accepted"` or `"rejected"` (the parser threw its documented error).
   * Anything it throws is a crash.
   */
  run(input: Uint8Array): Outcome | Promise<Outcome>;
}

/** Thrown by a target when a parser broke a property it promises (not a parser error). */
export class InvariantError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "InvariantError";
  }
}

/** Options for {@linkcode fuzzTarget}. */
export interface FuzzOptions {
  /** The seed; the same seed gives the same inputs. */
  seed: number;
  /** Inputs to try (default: unbounded, so give `durationMs`). */
  iterations?: number;
  /** Stop after this long, in milliseconds (default: unbounded, so give `iterations`). */
  durationMs?: number;
  /** An input that takes longer than this is a crash (default 2000 ms). */
  hangMs?: number;
  /** Told about every input before it runs, with the counts so far (for a watchdog). */
  onInput?: (input: Uint8Array, soFar: Readonly<TargetReport>) => void;
}

/** The first crash of a run, enough to reproduce it. */
export interface Crash {
  /** What went wrong, one line. */
  reason: string;
  /** The input, exactly as the parser got it. */
  input: Uint8Array;
}

/** What one target's run found. */
export interface TargetReport {
  /** The target's name. */
  target: string;
  /** Inputs tried. */
  tried: number;
  /** Inputs the parser refused with its documented error. */
  rejected: number;
  /** Inputs the parser accepted. */
  accepted: number;
  /** Inputs that crashed it (see the module documentation). */
  crashes: number;
  /** The slowest input's time, in milliseconds. */
  slowestMs: number;
  /** The first crash, if any. */
  firstCrash?: Crash;
  /** The distinct crash reasons seen (at most 10), numbers and offsets blurred. */
  crashKinds: string[];
}

/**
 * Why a thrown value is a crash, in one line. Every throw that reaches here is one: targets
 * catch the errors their parser documents.
 */
export function crashReason(e: unknown): string {
  if (!(e instanceof Error)) return `non-Error thrown: ${String(e).slice(0, 200)}`;
  const first = e.message.split("\n")[0].slice(0, 300);
  if (e instanceof RangeError && /call stack/i.test(e.message)) return `stack overflow: ${first}`;
  if (e instanceof RangeError && /array length|allocation|memory/i.test(e.message)) {
    return `unbounded allocation: ${first}`;
  }
  return `${e.name}: ${first}`;
}

/** Runs `target` on inputs from the seeded generator until the iterations or time run out. */
export async function fuzzTarget(target: FuzzTarget, options: FuzzOptions): Promise<TargetReport> {
  const rng = new FuzzRng(options.seed);
  const gen = new InputGenerator(target.corpus, target.dialect, rng);
  const hangMs = options.hangMs ?? 2000;
  const maxN = options.iterations ?? Infinity;
  const deadline = options.durationMs === undefined ? Infinity : Date.now() + options.durationMs;
  if (maxN === Infinity && deadline === Infinity) {
    throw new RangeError("give iterations or durationMs");
  }
  const report: TargetReport = {
    target: target.name,
    tried: 0,
    rejected: 0,
    accepted: 0,
    crashes: 0,
    slowestMs: 0,
    crashKinds: [],
  };
  const crash = (reason: string, input: Uint8Array) => {
    report.crashes++;
    report.firstCrash ??= { reason, input: input.slice() };
    const kind = reason.replace(/\d+/g, "N");
    if (report.crashKinds.length < 10 && !report.crashKinds.includes(kind)) {
      report.crashKinds.push(kind);
    }
  };
  while (report.tried < maxN && (report.tried & 63 || Date.now() < deadline)) {
    // The corpus itself first, unmutated: a parser that refuses its own valid inputs is news.
    const input = report.tried < target.corpus.length ? target.corpus[report.tried] : gen.next();
    options.onInput?.(input, report);
    report.tried++;
    const t0 = performance.now();
    let outcome: Outcome;
    try {
      const r = target.run(input);
      outcome = r instanceof Promise ? await r : r;
    } catch (e) {
      crash(crashReason(e), input);
      continue;
    }
    const ms = performance.now() - t0;
    if (ms > report.slowestMs) report.slowestMs = ms;
    if (ms > hangMs) {
      crash(`hang: took ${ms.toFixed(0)} ms (limit ${hangMs} ms)`, input);
      continue;
    }
    if (outcome === "accepted") {
      report.accepted++;
      gen.keep(input);
    } else report.rejected++;
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------

const FUZZ_PEER_ID = latin1Bytes("-FZ0001-000000000000");

/** The info-hash, info dictionary and file of the corpora (pieces of a 200 KiB file). */
async function sampleMeta(): Promise<Metainfo> {
  const pieces = new Uint8Array(13 * 20);
  for (let i = 0; i < pieces.length; i++) pieces[i] = (i * 37 + 11) & 0xff;
  return await makeMetainfo("fuzz.iso", 12 * 16384 + 100, 16384, pieces);
}

function wireTarget(meta: Metainfo): FuzzTarget {
  const hs = encodeHandshake(meta.infoHash, FUZZ_PEER_ID);
  const m = (msg: Message) => encodeMessage(msg);
  const block = new Uint8Array(64).map((_, i) => i);
  const allMessages = [
    m({ type: "keep-alive" }),
    m({ type: "choke" }),
    m({ type: "unchoke" }),
    m({ type: "interested" }),
    m({ type: "not interested" }),
    m({ type: "have", index: 3 }),
    m({ type: "bitfield", bitfield: Uint8Array.of(0xff, 0xf8) }),
    m({ type: "request", index: 1, begin: 16384, length: 16384 }),
    m({ type: "piece", index: 1, begin: 0, block }),
    m({ type: "cancel", index: 1, begin: 16384, length: 16384 }),
    m({ type: "port", port: 6881 }),
    m({ type: "unknown", id: 20, payload: te.encode("d1:md11:ut_metadatai1eee") }),
  ];
  const corpus = [
    hs,
    concat([hs, ...allMessages]),
    concat([hs, allMessages[6], allMessages[3], allMessages[7], allMessages[7]]),
    concat(allMessages),
    concat([allMessages[8], allMessages[5], allMessages[0]]),
    concat([hs, m({ type: "piece", index: 0, begin: 0, block: new Uint8Array(16384) })]),
  ];
  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };
  const dialect: Dialect = {
    maxLength: MAX_REQUEST_LENGTH + 4096,
    textNumbers: false,
    tokens: [...allMessages, hs, hs.subarray(0, 20), Uint8Array.of(19)],
    giants: [u32(0xffffffff), u32(0x7fffffff), u32(MAX_REQUEST_LENGTH + 10), u32(0x01000000)],
    // No nesting on the wire; the nearest thing is a flood of tiny messages.
    bomb: (n) => {
      const one = allMessages[5];
      const out = new Uint8Array(one.length * Math.min(n, 10_000));
      for (let i = 0; i < out.length; i += one.length) out.set(one, i);
      return out;
    },
  };
  const limit = Math.max(HANDSHAKE_LENGTH, MAX_REQUEST_LENGTH + 9 + 4);
  const decodeAll = (input: Uint8Array, chunked: boolean) => {
    const dec = new WireDecoder({ handshake: input[0] === 19 });
    const parts: Uint8Array[] = [];
    const emit = (msg: Message | Handshake) => {
      // Re-encoded at once: blocks point into the decoder's buffer only during the callback.
      parts.push(
        msg.type === "handshake"
          ? encodeHandshake(msg.infoHash, msg.peerId, msg.reserved)
          : encodeMessage(msg),
      );
    };
    let error: string | undefined;
    try {
      if (!chunked) dec.push(input, emit);
      else {
        // Tiny reads split every field somewhere; a few large ones keep big inputs quick.
        for (let at = 0, i = 0; at < input.length; i++) {
          const k = CHUNKS[i % CHUNKS.length];
          dec.push(input.subarray(at, at + k), emit);
          at += k;
          if (dec.buffered > limit) {
            throw new InvariantError(`the decoder holds ${dec.buffered} bytes, over ${limit}`);
          }
        }
      }
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      error = e.message;
    }
    return { out: concat(parts), error, buffered: dec.buffered };
  };
  return {
    name: "wire",
    description: "BEP 3 handshake and messages (WireDecoder), whole and in small chunks",
    corpus,
    dialect,
    run(input) {
      const whole = decodeAll(input, false);
      const chunked = decodeAll(input, true);
      if (whole.error !== chunked.error || !sameBytes(whole.out, chunked.out)) {
        throw new InvariantError(
          `chunking changed the result: ${whole.error ?? "ok"} / ${chunked.error ?? "ok"}`,
        );
      }
      if (whole.error !== undefined) return "rejected";
      if (
        whole.out.length + whole.buffered !== input.length ||
        !sameBytes(whole.out, input.subarray(0, whole.out.length))
      ) {
        throw new InvariantError("the decoded messages do not re-encode to the input");
      }
      return "accepted";
    },
  };
}

/** Read sizes the chunked wire decode cycles through. */
const CHUNKS = [1, 2, 3, 4, 5, 7, 11, 13, 1, 3, 67, 1021, 4099, 16411];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const BENCODE_TOKENS = [
  "i",
  "e",
  "l",
  "d",
  ":",
  "0:",
  "i0e",
  "i-1e",
  "i-0e",
  "i03e",
  "ie",
  "le",
  "de",
  "4:info",
  "6:pieces",
  "6:length",
  "12:piece length",
  "4:name",
  "5:files",
  "9:__proto__",
  "8:announce",
  "d4:infod",
  "ee",
].map(latin1Bytes);

const BENCODE_GIANTS = [
  "99999999999:",
  "9999999999:",
  "4294967296:",
  "2147483647:",
  "i99999999999999999999999e",
  "i-99999999999999999999e",
  "i18446744073709551616e",
].map(latin1Bytes);

function bencodeBomb(depth: number): Uint8Array {
  const out = new Uint8Array(depth);
  for (let i = 0; i < depth; i++) out[i] = i % 3 === 2 ? 0x64 /* d */ : 0x6c /* l */;
  return out;
}

/** True when every dictionary key in `v` was valid UTF-8 (so re-encoding gives its bytes back). */
function keysRoundTrip(v: BValue): boolean {
  if (Array.isArray(v)) return v.every(keysRoundTrip);
  if (typeof v === "object" && !(v instanceof Uint8Array)) {
    return Object.entries(v).every(([k, x]) => !k.includes("\uFFFD") && keysRoundTrip(x));
  }
  return true;
}

function bencodeTarget(meta: Metainfo): FuzzTarget {
  const corpus = [
    "i42e",
    "i-42e",
    "4:spam",
    "0:",
    "le",
    "de",
    "l4:spami42ee",
    "d3:cow3:moo4:spam4:eggse",
    "d4:spaml1:a1:bee",
    "lllleeee",
    "d1:ad1:bd1:ci1eeee",
  ].map(latin1Bytes);
  corpus.push(meta.info, toTorrent(meta, "http://127.0.0.1:8000/announce"));
  corpus.push(
    encodeAnnounceResponse({
      interval: 30,
      complete: 1,
      incomplete: 2,
      peers: [{ ip: "127.0.0.1", port: 6881, peerId: FUZZ_PEER_ID }, {
        ip: "::1",
        port: 6882,
        peerId: FUZZ_PEER_ID,
      }],
    }, false),
    encodeScrapeResponse([{ infoHash: meta.infoHash, complete: 1, incomplete: 2, downloaded: 3 }]),
  );
  return {
    name: "bencode",
    description: "bencoding (decode and decodeWithSpan)",
    corpus,
    dialect: {
      maxLength: 64 * 1024,
      textNumbers: true,
      tokens: BENCODE_TOKENS,
      giants: BENCODE_GIANTS,
      bomb: bencodeBomb,
    },
    run(input) {
      let value: BValue;
      try {
        value = decode(input);
      } catch (e) {
        if (!(e instanceof BencodeError)) throw e;
        // decodeWithSpan must refuse it too.
        try {
          decodeWithSpan(input, "info");
        } catch (e2) {
          if (e2 instanceof BencodeError) return "rejected";
          throw e2;
        }
        throw new InvariantError("decodeWithSpan accepted what decode refused");
      }
      decodeWithSpan(input, "info");
      if (keysRoundTrip(value) && !sameBytes(encode(value), input)) {
        throw new InvariantError("a decoded value does not re-encode to its input");
      }
      return "accepted";
    },
  };
}

async function torrentTargets(meta: Metainfo): Promise<FuzzTarget[]> {
  const other = await makeMetainfo("one.bin", 5, 16384, new Uint8Array(20).fill(7));
  const infoCorpus = [
    meta.info,
    other.info,
    encode({ length: 5, name: "a", "piece length": 16384, pieces: new Uint8Array(20) }),
    encode({
      files: [{ length: 1, path: ["a"] }],
      name: "dir",
      "piece length": 16384,
      pieces: new Uint8Array(20),
    }),
  ];
  const torrentCorpus = [
    toTorrent(meta, "http://127.0.0.1:8000/announce"),
    toTorrent(other, "udp://tracker.example:80"),
    encode({
      announce: "http://a/announce",
      "announce-list": [["http://a/announce"], ["http://b/announce"]],
      comment: "fuzz",
      info: {
        length: 5,
        name: "a",
        "piece length": 16384,
        pieces: new Uint8Array(20),
        private: 1,
      },
    }),
  ];
  const dialect: Dialect = {
    maxLength: 64 * 1024,
    textNumbers: true,
    tokens: BENCODE_TOKENS,
    giants: BENCODE_GIANTS,
    bomb: bencodeBomb,
  };
  const rejectOnly = (e: unknown): Outcome => {
    if (e instanceof MetainfoError) return "rejected";
    throw e;
  };
  return [
    {
      name: "torrent",
      description: ".torrent files (parseTorrent)",
      corpus: torrentCorpus,
      dialect,
      async run(input) {
        try {
          const { meta } = await parseTorrent(input);
          if (meta.pieces.length !== meta.pieceCount * 20 || meta.infoHash.length !== 20) {
            throw new InvariantError("parseTorrent returned inconsistent metainfo");
          }
          return "accepted";
        } catch (e) {
          return rejectOnly(e);
        }
      },
    },
    {
      name: "info",
      description: "info dictionaries as published (fromInfo)",
      corpus: infoCorpus,
      dialect,
      async run(input) {
        try {
          const meta = await fromInfo(input);
          if (meta.pieceCount !== Math.ceil(meta.length / meta.pieceLength)) {
            throw new InvariantError("fromInfo returned an inconsistent piece count");
          }
          return "accepted";
        } catch (e) {
          return rejectOnly(e);
        }
      },
    },
  ];
}

function pct(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += "%" + x.toString(16).padStart(2, "0");
  return s;
}

const QUERY_TOKENS = [
  "&",
  "=",
  "?",
  "%",
  "%zz",
  "%4",
  "%00",
  "%ff",
  "%FF%FE",
  "+",
  "#",
  "é",
  "info_hash=",
  "peer_id=",
  "port=",
  "left=",
  "uploaded=",
  "downloaded=",
  "event=started",
  "event=stopped",
  "event=completed",
  "event=%ff",
  "numwant=",
  "compact=0",
  "no_peer_id=1",
  "ip=10.0.0.1",
  "%69nfo_hash=",
].map((s) => te.encode(s));

async function queryTargets(meta: Metainfo): Promise<FuzzTarget[]> {
  const registry = new Registry();
  await registry.preload(meta.info);
  const ih = pct(meta.infoHash);
  const base = `info_hash=${ih}&peer_id=-lt2080-abcdefghijkl&port=6881`;
  const announces = [
    `${base}&uploaded=0&downloaded=0&left=${meta.length}&corrupt=0&key=1a2b3c4d&event=started` +
    `&numwant=200&compact=1&no_peer_id=1&supportcrypto=1&redundant=0`,
    `?${base}&uploaded=100&downloaded=200&left=0&event=completed&compact=1`,
    `${base}&left=5&compact=0`,
    `${base}&left=5&compact=0&no_peer_id=1&numwant=5`,
    `${base}&left=0&event=stopped`,
    `info_hash=${"%aa".repeat(20)}&peer_id=-TR3000-abcdefghijkl&port=51413&left=1&event=`,
    `peer_id=${pct(FUZZ_PEER_ID)}&port=1&left=1&info_hash=${ih}&ip=6.6.6.6&trackerid=x`,
  ].map((s) => te.encode(s));
  const scrapes = [`info_hash=${ih}`, "", `info_hash=${ih}&info_hash=${"%01".repeat(20)}`].map((
    s,
  ) => te.encode(s));
  const dialect: Dialect = {
    maxLength: 8192,
    textNumbers: true,
    tokens: QUERY_TOKENS,
    giants: ["&k=1".repeat(65), "&x=" + "y".repeat(4100), `&info_hash=${ih}`.repeat(3)].map((s) =>
      te.encode(s)
    ),
    bomb: (n) => te.encode("&a=%25".repeat(Math.min(n, 2000))),
  };
  return [
    {
      name: "announce",
      description: "HTTP announce query strings (parseAnnounce, then the registry's answer)",
      corpus: announces,
      dialect,
      run(input) {
        try {
          const a = parseAnnounce(utf8.decode(input));
          encodeAnnounceResponse(registry.announce(a, "127.0.0.1"), a.compact, a.noPeerId);
          return "accepted";
        } catch (e) {
          if (e instanceof AnnounceError || e instanceof RegistryError) return "rejected";
          throw e;
        }
      },
    },
    {
      name: "scrape",
      description: "HTTP scrape query strings (parseScrape)",
      corpus: scrapes,
      dialect,
      run(input) {
        try {
          parseScrape(utf8.decode(input));
          return "accepted";
        } catch (e) {
          if (e instanceof AnnounceError) return "rejected";
          throw e;
        }
      },
    },
  ];
}

/** The placeholder the XML-RPC corpus uses for a valid token, replaced before each call. */
const TOKEN_MARK = "@TOKEN@";

function xmlCall(method: string, ...params: string[]): string {
  const ps = params.map((p) => `<param><value>${p}</value></param>`).join("");
  return `<?xml version="1.0"?><methodCall><methodName>${method}</methodName>` +
    `<params>${ps}</params></methodCall>`;
}

const XML_TOKENS = [
  "<!",
  "<!-",
  "<!DOCTYPE x [",
  '<!ENTITY a "aaaaaaaaaa">',
  '<!ENTITY % p SYSTEM "file:///etc/passwd">',
  "]>",
  "&a;",
  "&amp;",
  "&#x41;",
  "&#99999999;",
  "&#0;",
  "<![CDATA[",
  "]]>",
  "<!--",
  "-->",
  "<?xml version='1.0' encoding='latin1'?>",
  "<value>",
  "</value>",
  "<array><data>",
  "</data></array>",
  "<struct><member><name>",
  "</name>",
  "</member></struct>",
  "<int>",
  "</int>",
  "<i4>",
  "<i8>",
  "<double>",
  "<boolean>",
  "<base64>",
  "</base64>",
  "<nil/>",
  "<dateTime.iso8601>",
  "<string>",
  "</string>",
  "<param>",
  "</param>",
  "__proto__",
  "constructor",
  "toString",
  "system.multicall",
  "swarm.register",
  "swarm.publish",
  "swarm.reportProgress",
  TOKEN_MARK,
  "\xff\xfe",
  "\x00",
].map(latin1Bytes);

async function xmlrpcTarget(meta: Metainfo): Promise<FuzzTarget> {
  const registry = new Registry({ maxPeers: 200 });
  const me = { host: "127.0.0.1", port: 6881, peerId: "ab".repeat(20), role: "seeder" as const };
  await registry.preload(meta.info);
  let handlerError: unknown;
  const server = new XmlRpcHttpServer({
    methods: trackerMethods(registry),
    onError: (e) => (handlerError ??= e),
  });
  const from: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 50000 };
  const tok = `<string>${TOKEN_MARK}</string>`;
  const b64 = (b: Uint8Array) => `<base64>${btoa(latin1String(b))}</base64>`;
  const struct = (fields: Record<string, string>) =>
    "<struct>" +
    Object.entries(fields).map(([k, v]) => `<member><name>${k}</name><value>${v}</value></member>`)
      .join("") +
    "</struct>";
  const reg = struct({
    host: "<string>localhost</string>",
    port: "<int>9001</int>",
    peerId: `<string>${"0123456789".repeat(4)}</string>`,
    role: "<string>leecher</string>",
  });
  const corpus = [
    xmlCall(Methods.register, reg),
    xmlCall(Methods.publish, tok, b64(meta.info)),
    xmlCall(Methods.getMetainfo),
    xmlCall(
      Methods.reportProgress,
      tok,
      b64(Uint8Array.of(0xff, 0xf8)),
      "<double>100</double>",
      "<i8>5000000000</i8>",
    ),
    xmlCall(Methods.listPeers, tok),
    xmlCall(Methods.listPeers, "<int>7</int>"),
    xmlCall(Methods.leave, tok),
    xmlCall(
      "system.multicall",
      `<array><data><value>${
        struct({
          methodName: `<string>${Methods.getMetainfo}</string>`,
          params: "<array><data/></array>",
        })
      }</value></data></array>`,
    ),
    xmlCall(
      "demo.types",
      "<boolean>1</boolean>",
      "<nil/>",
      "<dateTime.iso8601>20260101T00:00:00</dateTime.iso8601>",
      "<array><data><value><i4>-5</i4></value><value>bare</value></data></array>",
      "<string><![CDATA[<x>]]>&amp;</string>",
    ),
  ].map((s) => te.encode(s));
  const known = new Set<number>([
    ...Object.values(FaultCode),
    -32601, // method not found
    -32602, // invalid parameters (system.multicall)
  ]);
  const mark = te.encode(TOKEN_MARK);
  return {
    name: "xmlrpc",
    description: "XML-RPC request bodies through the tracker's request handler",
    corpus,
    dialect: {
      maxLength: MAX_BODY_BYTES + 8192,
      textNumbers: true,
      tokens: XML_TOKENS,
      giants: [
        te.encode(`<!--${" ".repeat(MAX_BODY_BYTES)}-->`),
        te.encode(`<string>${"A".repeat(MAX_BODY_BYTES - 100)}</string>`),
        te.encode("<i8>99999999999999999999999999</i8>"),
      ],
      bomb: (n) => te.encode("<value><array><data>".repeat(Math.min(n, 4000))),
    },
    async run(input) {
      // A real token where the corpus has its placeholder, so calls get past the token check.
      let body = input;
      if (indexOf(input, mark) >= 0) {
        const { token } = registry.register(me, "127.0.0.1");
        body = te.encode(latin1String(input).replaceAll(TOKEN_MARK, token));
      }
      handlerError = undefined;
      const headers = new Headers({ "content-type": "text/xml" });
      // Both ways a body arrives: framed by Content-Length, or streamed without one.
      if (input.length % 2 === 0) headers.set("content-length", String(body.length));
      const res = await server.handle(
        new Request("http://127.0.0.1:8000/", {
          method: "POST",
          headers,
          body: body as Uint8Array<ArrayBuffer>,
        }),
        from,
      );
      const text = await res.text();
      if (handlerError !== undefined) {
        throw new InvariantError(`a handler failed: ${crashReason(handlerError)}`);
      }
      if (![200, 400, 413].includes(res.status)) {
        throw new InvariantError(`HTTP ${res.status} answer: ${text.slice(0, 100)}`);
      }
      try {
        parseMethodResponse(text);
        return "accepted";
      } catch (e) {
        if (!(e instanceof XmlRpcFault)) {
          throw new InvariantError(`not an XML-RPC response: ${text.slice(0, 100)}`);
        }
        const msg = e.faultString;
        if (msg === "" || /\n\s+at /.test(msg) || !known.has(e.faultCode)) {
          throw new InvariantError(`an unclear fault ${e.faultCode}: ${msg.slice(0, 200)}`);
        }
        return "rejected";
      }
    },
  };
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * Every in-process target: wire, bencode, torrent, info, announce, scrape, xmlrpc. Their corpora
 * name the swarm of `meta` (default: a made-up 200 KiB file), so valid inputs get past the
 * info-hash checks.
 */
export async function makeTargets(meta?: Metainfo): Promise<FuzzTarget[]> {
  meta ??= await sampleMeta();
  return [
    wireTarget(meta),
    bencodeTarget(meta),
    ...await torrentTargets(meta),
    ...await queryTargets(meta),
    await xmlrpcTarget(meta),
  ];
}

/** The names of {@linkcode makeTargets}'s targets, in order. */
export const TARGET_NAMES: readonly string[] = [
  "wire",
  "bencode",
  "torrent",
  "info",
  "announce",
  "scrape",
  "xmlrpc",
];

/** Options for {@linkcode fuzzIsolated}: those of {@linkcode fuzzTarget} but `onInput`. */
export interface IsolatedOptions extends Omit<FuzzOptions, "onInput"> {
  /** No new input for this long means the worker hangs (default 4 × `hangMs`, at least 10 s). */
  stallMs?: number;
}

/** Bytes of the shared buffer a worker publishes its current input in (inputs are shorter). */
const SHARED_INPUT_BYTES = 256 * 1024;

/**
 * Runs the target named `name` (one of {@linkcode TARGET_NAMES}) in a Worker, watched from
 * here: if it stops making progress (an endless loop) or dies of an uncaught error, the worker
 * is ended and the input it was on becomes the crash, read from memory the two share. So a
 * hang cannot hang the caller, and every crash comes with its input. `workerUrl` swaps in
 * another worker module speaking the same protocol (tests use one that hangs on purpose).
 */
export function fuzzIsolated(
  name: string,
  options: IsolatedOptions,
  workerUrl: URL = new URL("./fuzz_worker.ts", import.meta.url),
): Promise<TargetReport> {
  const sab = new SharedArrayBuffer(32 + SHARED_INPUT_BYTES);
  const head = new Int32Array(sab, 0, 8);
  const worker = new Worker(workerUrl, { type: "module" });
  const stallMs = options.stallMs ?? Math.max(10_000, 4 * (options.hangMs ?? 2000));
  const { promise, resolve, reject } = Promise.withResolvers<TargetReport>();
  const partial = (reason: string): TargetReport => {
    const input = new Uint8Array(sab, 32, Math.min(Atomics.load(head, 4), SHARED_INPUT_BYTES))
      .slice();
    const crash = { reason, input };
    return {
      target: name,
      tried: Atomics.load(head, 0) + 1,
      rejected: Atomics.load(head, 1),
      accepted: Atomics.load(head, 2),
      crashes: Atomics.load(head, 3) + 1,
      slowestMs: stallMs,
      firstCrash: crash,
      crashKinds: [reason.replace(/\d+/g, "N")],
    };
  };
  let seen = -1;
  let since = Date.now();
  const watchdog = setInterval(() => {
    const now = Atomics.load(head, 0);
    // Until the first input (head[5] set), the worker is still loading: give it a minute.
    const limit = Atomics.load(head, 5) ? stallMs : Math.max(stallMs, 60_000);
    if (now !== seen) {
      seen = now;
      since = Date.now();
    } else if (Date.now() - since > limit) {
      finish(partial(`hang: no progress for ${limit} ms`));
    }
  }, 250);
  const finish = (r: TargetReport | Error) => {
    clearInterval(watchdog);
    worker.terminate();
    if (r instanceof Error) reject(r);
    else resolve(r);
  };
  worker.onmessage = (e: MessageEvent<{ report?: TargetReport; error?: string }>) => {
    if (e.data.report) finish(e.data.report);
    else finish(new Error(e.data.error ?? "the fuzz worker failed"));
  };
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    finish(partial(`the worker died: ${e.message}`));
  };
  worker.postMessage({ name, options, sab });
  return promise;
}
