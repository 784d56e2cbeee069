/**
 * The swarm's test file: pseudo-random bytes reproducible from a seed, written at disk speed
 * without holding the file in memory, to `PATH.part` first and renamed into place only when
 * complete, so an interrupted run never leaves a short file under the final name.
 *
 * The bytes are the output of xoshiro128++ (Blackman and Vigna), seeded from the 64-bit seed with
 * two splitmix64 outputs (low word first), each 32-bit output stored little-endian. The stream is
 * independent of chunking, so a smaller file is a prefix of a larger one with the same seed. It
 * generates over 2 GB/s on one core, faster than most disks take it.
 *
 * @example
 * ```ts
 * import { testBytes, writeTestFile } from "./test_file.ts";
 * const { size, seconds } = await writeTestFile("ubuntu-teste.iso", 500 * 2 ** 20, {
 *   seed: 1,
 *   onProgress: (done, total) => console.log(`${done}/${total}`),
 * });
 * testBytes(16, 1); // the first 16 bytes of that same file
 * ```
 * @module
 */

import { FatalError, systemReason } from "./cli.ts";

/** The seed used when none is given, so the same command always makes the same file. */
export const DEFAULT_SEED = 1;
/** Bytes generated and written per write call by default: 4 MiB. */
export const DEFAULT_CHUNK_SIZE = 4 << 20;

const MASK64 = (1n << 64n) - 1n;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The xoshiro128++ generator: 128 bits of state, 32-bit outputs, period 2^128 − 1.
 *
 * @example
 * ```ts
 * import { Xoshiro128pp } from "./test_file.ts";
 * const rng = new Xoshiro128pp(1);
 * rng.next().toString(16); // "7ff78de4", as the reference C implementation gives
 * ```
 */
export class Xoshiro128pp {
  readonly #s = new Int32Array(4);
  readonly #one = new Uint32Array(1);

  /**
   * Seeds the state from a 64-bit `seed` (a non-negative safe integer or a bigint below 2^64)
   * with two outputs of splitmix64, the seeding the generator's authors recommend.
   */
  constructor(seed: number | bigint = DEFAULT_SEED) {
    if (
      typeof seed === "number"
        ? !Number.isSafeInteger(seed) || seed < 0
        : seed < 0n || seed > MASK64
    ) {
      throw new RangeError(`seed must be an integer from 0 to 2^64-1, got ${seed}`);
    }
    let x = BigInt(seed);
    const splitmix64 = (): bigint => {
      x = (x + 0x9e3779b97f4a7c15n) & MASK64;
      let z = x;
      z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
      z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
      return z ^ (z >> 31n);
    };
    const a = splitmix64();
    const b = splitmix64();
    this.#s[0] = Number(a & 0xffffffffn);
    this.#s[1] = Number(a >> 32n);
    this.#s[2] = Number(b & 0xffffffffn);
    this.#s[3] = Number(b >> 32n);
  }

  /** The next 32-bit output, as an unsigned number. */
  next(): number {
    this.fill(this.#one);
    return this.#one[0];
  }

  /** Fills `words` with the next `words.length` outputs, in order. */
  fill(words: Uint32Array | Int32Array): void {
    const s = this.#s;
    let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    const n = words.length;
    for (let i = 0; i < n; i++) {
      const r = (s0 + s3) | 0;
      words[i] = (((r << 7) | (r >>> 25)) + s0) | 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
  }
}

/**
 * The test file's byte stream for one seed: each `read` continues where the last stopped, so any
 * split into reads yields the same bytes.
 *
 * @example
 * ```ts
 * import { TestDataStream } from "./test_file.ts";
 * const stream = new TestDataStream(1);
 * const head = new Uint8Array(4);
 * stream.read(head); // Uint8Array [0xe4, 0x8d, 0xf7, 0x7f]
 * ```
 */
export class TestDataStream {
  readonly #rng: Xoshiro128pp;
  /** Bytes of the last generated word not handed out yet (little-endian order). */
  readonly #spare = new Uint8Array(4);
  #spareAt = 4;

  /** Starts the stream for `seed` (see {@linkcode Xoshiro128pp}). */
  constructor(seed: number | bigint = DEFAULT_SEED) {
    this.#rng = new Xoshiro128pp(seed);
  }

  /** Fills `out` with the next `out.length` bytes of the stream. */
  read(out: Uint8Array): void {
    let off = 0;
    while (this.#spareAt < 4 && off < out.length) out[off++] = this.#spare[this.#spareAt++];
    const rest = out.length - off;
    const whole = rest >> 2;
    if (whole > 0) {
      if ((out.byteOffset + off) % 4 === 0) {
        const words = new Uint32Array(out.buffer, out.byteOffset + off, whole);
        this.#rng.fill(words);
        if (!LITTLE_ENDIAN) swapWords(words);
      } else {
        const words = new Uint32Array(whole);
        this.#rng.fill(words);
        if (!LITTLE_ENDIAN) swapWords(words);
        out.set(new Uint8Array(words.buffer), off);
      }
      off += whole * 4;
    }
    if (off < out.length) {
      const w = this.#rng.next();
      for (let i = 0; i < 4; i++) this.#spare[i] = (w >>> (8 * i)) & 0xff;
      this.#spareAt = 0;
      while (off < out.length) out[off++] = this.#spare[this.#spareAt++];
    }
  }
}

function swapWords(words: Uint32Array): void {
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    words[i] = ((w & 0xff) << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24);
  }
}

/** The first `size` bytes of the test file for `seed`, in memory: for tests and small files. */
export function testBytes(size: number, seed: number | bigint = DEFAULT_SEED): Uint8Array {
  const out = new Uint8Array(size);
  new TestDataStream(seed).read(out);
  return out;
}

/** Options for {@linkcode writeTestFile}. */
export interface WriteTestFileOptions {
  /** The seed (default {@linkcode DEFAULT_SEED}). */
  seed?: number | bigint;
  /** Bytes per write (default {@linkcode DEFAULT_CHUNK_SIZE}); two buffers this size are used. */
  chunkSize?: number;
  /** Called after each chunk is written, with bytes written so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Called when every byte is written and the flush to disk starts, which can take seconds. */
  onFlush?: () => void;
  /**
   * Stops the write: the `.part` file is removed and the promise rejects with the signal's
   * reason.
   */
  signal?: AbortSignal;
}

/** What {@linkcode writeTestFile} did. */
export interface WriteTestFileResult {
  /** The final path. */
  path: string;
  /** Bytes written. */
  size: number;
  /** Wall-clock seconds taken, including the final flush to disk. */
  seconds: number;
}

/**
 * Writes `size` bytes of the test stream for `options.seed` to `path`: generated chunk by chunk
 * into two reused buffers (one is filled while the other is being written), written to
 * `path + ".part"`, flushed to disk, then renamed to `path`, replacing any file there. On failure
 * the `.part` file is removed and a {@linkcode FatalError} with one sentence such as "cannot
 * write x.iso: No space left on device" is thrown.
 */
export async function writeTestFile(
  path: string,
  size: number,
  options: WriteTestFileOptions = {},
): Promise<WriteTestFileResult> {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new RangeError(`size must be a non-negative integer, got ${size}`);
  }
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunkSize must be a positive integer, got ${chunkSize}`);
  }
  const { signal, onProgress } = options;
  signal?.throwIfAborted();
  const stream = new TestDataStream(options.seed ?? DEFAULT_SEED);
  const part = `${path}.part`;
  const started = performance.now();
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(part, { write: true, create: true, truncate: true });
    // Two buffers, no bigger than the file needs: fill one while the other is being written.
    const bufLength = Math.min(chunkSize, size);
    const buffers = [new Uint8Array(bufLength), new Uint8Array(bufLength)];
    let pending: Promise<void> | undefined;
    let done = 0;
    for (let i = 0; done < size; i ^= 1) {
      const n = Math.min(bufLength, size - done);
      const chunk = buffers[i].subarray(0, n);
      stream.read(chunk);
      if (pending) await pending;
      signal?.throwIfAborted();
      const before = done;
      pending = writeAll(file, chunk).then(() => onProgress?.(before + n, size));
      done += n;
    }
    if (pending) await pending;
    signal?.throwIfAborted();
    if (size === 0) onProgress?.(0, 0);
    options.onFlush?.();
    await file.syncData();
    file.close();
    file = undefined;
    await Deno.rename(part, path);
  } catch (e) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(part).catch(() => {});
    if (signal?.aborted && e === signal.reason) throw e;
    if (e instanceof FatalError) throw e;
    throw new FatalError(`cannot write ${path}: ${systemReason(e)}`, { cause: e });
  }
  return { path, size, seconds: (performance.now() - started) / 1000 };
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}
