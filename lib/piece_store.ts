/**
 * The shared file on disk, addressed by piece: verified pieces are written at their offset with
 * `Deno.FsFile.seek`, and blocks are served from a small cache of whole pieces so a piece asked
 * for by several peers is read from disk once.
 *
 * @example
 * ```ts
 * import { PieceStore } from "./piece_store.ts";
 * const store = await PieceStore.create("out.iso", meta);
 * if (await store.verifyAndWrite(0, pieceBytes)) console.log("piece 0 is on disk");
 * const block = await store.readBlock(0, 0, 16384);
 * store.close();
 * ```
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import { bytesEqual, sha1 } from "./hash.ts";
import { type Metainfo, pieceHash, pieceSize } from "./metainfo.ts";

/** Raised when the file cannot be opened, read or written; `cause` holds the system error. */
export class PieceStoreError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "PieceStoreError";
  }
}

/** Pieces kept in memory for serving; a few MiB bounds the peer's memory. */
const CACHE_PIECES = 8;

/** Reads and writes pieces of one file; see the module doc. */
export class PieceStore {
  readonly #file: Deno.FsFile;
  readonly #meta: Metainfo;
  readonly #cache = new Map<number, Promise<Uint8Array>>();
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(file: Deno.FsFile, meta: Metainfo, readonly path: string) {
    this.#file = file;
    this.#meta = meta;
  }

  /** Opens an existing complete file for serving (a seeder). */
  static async openForSeeding(path: string, meta: Metainfo): Promise<PieceStore> {
    const file = await wrap(`cannot open ${path}`, () => Deno.open(path, { read: true }));
    const size = (await file.stat()).size;
    if (size !== meta.length) {
      file.close();
      throw new PieceStoreError(`${path} is ${size} bytes, but the swarm's file is ${meta.length}`);
    }
    return new PieceStore(file, meta, path);
  }

  /**
   * Opens (creating if needed) the download file at its full length. A file already there is
   * kept: {@linkcode PieceStore.scan} finds which of its pieces are already good.
   */
  static async create(path: string, meta: Metainfo): Promise<PieceStore> {
    const file = await wrap(
      `cannot create ${path}`,
      () => Deno.open(path, { read: true, write: true, create: true }),
    );
    try {
      const size = (await file.stat()).size;
      if (size !== meta.length) await file.truncate(meta.length);
    } catch (e) {
      file.close();
      throw new PieceStoreError(`cannot size ${path} to ${meta.length} bytes: ${reason(e)}`, {
        cause: e,
      });
    }
    return new PieceStore(file, meta, path);
  }

  /**
   * Hashes the pieces already in the file and returns those that match, so a restarted download
   * resumes. Pieces that are all zeros (never written) are skipped without hashing.
   */
  async scan(onProgress?: (done: number, total: number) => void): Promise<Bitfield> {
    const have = new Bitfield(this.#meta.pieceCount);
    for (let i = 0; i < this.#meta.pieceCount; i++) {
      const data = await this.#readPiece(i);
      if (!isZero(data) && bytesEqual(await sha1(data), pieceHash(this.#meta, i))) have.set(i);
      onProgress?.(i + 1, this.#meta.pieceCount);
    }
    return have;
  }

  /**
   * Checks `data` against piece `index`'s SHA-1 and writes it only if it matches. Returns
   * whether it matched; unverified bytes never reach the file.
   */
  async verifyAndWrite(index: number, data: Uint8Array): Promise<boolean> {
    if (data.length !== pieceSize(this.#meta, index)) return false;
    if (!bytesEqual(await sha1(data), pieceHash(this.#meta, index))) return false;
    await this.#exclusive(async () => {
      await this.#file.seek(index * this.#meta.pieceLength, Deno.SeekMode.Start);
      let off = 0;
      while (off < data.length) off += await this.#file.write(data.subarray(off));
    }, `cannot write piece ${index} to ${this.path}`);
    this.#cache.set(index, Promise.resolve(data));
    this.#trim();
    return true;
  }

  /** Reads `length` bytes at `begin` of piece `index` (the caller checks that it holds it). */
  async readBlock(index: number, begin: number, length: number): Promise<Uint8Array> {
    let piece = this.#cache.get(index);
    if (piece) {
      // Move to the back: the map's order is the eviction order.
      this.#cache.delete(index);
    } else {
      piece = this.#readPiece(index);
    }
    this.#cache.set(index, piece);
    this.#trim();
    const data = await piece;
    return data.subarray(begin, begin + length);
  }

  /** Closes the file; later calls fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  #readPiece(index: number): Promise<Uint8Array> {
    const size = pieceSize(this.#meta, index);
    return this.#exclusive(async () => {
      const buf = new Uint8Array(size);
      await this.#file.seek(index * this.#meta.pieceLength, Deno.SeekMode.Start);
      let off = 0;
      while (off < size) {
        const n = await this.#file.read(buf.subarray(off));
        if (n === null) throw new Error("file is shorter than expected");
        off += n;
      }
      return buf;
    }, `cannot read piece ${index} from ${this.path}`);
  }

  #trim(): void {
    while (this.#cache.size > CACHE_PIECES) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
  }

  /** Runs `fn` alone: a seek and its read or write must not interleave with another's. */
  #exclusive<T>(fn: () => Promise<T>, what: string): Promise<T> {
    const run = this.#lock.then(fn).catch((e) => {
      throw e instanceof PieceStoreError
        ? e
        : new PieceStoreError(`${what}: ${reason(e)}`, { cause: e });
    });
    this.#lock = run.catch(() => {});
    return run;
  }
}

function isZero(data: Uint8Array): boolean {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.byteLength >> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  for (let i = words.length << 2; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

/** A short human reason for a system error, e.g. "No space left on device". */
export function reason(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "no such file or directory";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\(os error \d+\).*$/, "").replace(/:\s*(open|write|read) .*$/, "");
}

async function wrap<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new PieceStoreError(`${what}: ${reason(e)}`, { cause: e });
  }
}
