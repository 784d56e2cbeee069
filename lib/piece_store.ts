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
import { BufferPool } from "./buffer_pool.ts";
import { systemReason } from "./cli.ts";
import { bytesEqual, sha1Sync } from "./hash.ts";
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
const CACHE_PIECES = 16;

/** Reads and writes pieces of one file; see the module doc. */
export class PieceStore {
  readonly #file: Deno.FsFile;
  readonly #meta: Metainfo;
  readonly #cache = new Map<number, Uint8Array>();
  /** Piece-sized buffers shared with the engine, which fills them with downloaded pieces. */
  readonly pool: BufferPool;
  #closed = false;

  private constructor(
    file: Deno.FsFile,
    meta: Metainfo,
    readonly path: string,
    /** True when the file was already there before this store opened it (worth a scan). */
    readonly existed: boolean,
  ) {
    this.#file = file;
    this.#meta = meta;
    this.pool = new BufferPool(meta.pieceLength, 32);
  }

  /** Opens an existing complete file for serving (a seeder). */
  static async openForSeeding(path: string, meta: Metainfo): Promise<PieceStore> {
    const file = await wrap(`cannot open ${path}`, () => Deno.open(path, { read: true }));
    const size = (await file.stat()).size;
    if (size !== meta.length) {
      file.close();
      throw new PieceStoreError(`${path} is ${size} bytes, but the swarm's file is ${meta.length}`);
    }
    return new PieceStore(file, meta, path, true);
  }

  /**
   * Opens (creating if needed) the download file at its full length. A file already there is
   * kept: {@linkcode PieceStore.scan} finds which of its pieces are already good.
   */
  static async create(path: string, meta: Metainfo): Promise<PieceStore> {
    const existed = await Deno.stat(path).then(() => true, () => false);
    const file = await wrap(
      `cannot create ${path}`,
      () => Deno.open(path, { read: true, write: true, create: true }),
    );
    try {
      const size = (await file.stat()).size;
      if (size !== meta.length) await file.truncate(meta.length);
    } catch (e) {
      file.close();
      throw new PieceStoreError(`cannot size ${path} to ${meta.length} bytes: ${systemReason(e)}`, {
        cause: e,
      });
    }
    return new PieceStore(file, meta, path, existed);
  }

  /**
   * Hashes the pieces already in the file and returns those that match, so a restarted download
   * resumes. All-zero pieces (never written, or zeros in the real file) are hashed once per
   * piece size, not once each.
   */
  scan(onProgress?: (done: number, total: number) => void): Bitfield {
    const have = new Bitfield(this.#meta.pieceCount);
    const zeroHashes = new Map<number, Uint8Array>();
    for (let i = 0; i < this.#meta.pieceCount; i++) {
      const data = this.#readPiece(i);
      let hash: Uint8Array;
      if (isZero(data)) {
        hash = zeroHashes.get(data.length) ?? sha1Sync(data);
        zeroHashes.set(data.length, hash);
      } else {
        hash = sha1Sync(data);
      }
      this.pool.release(data);
      if (bytesEqual(hash, pieceHash(this.#meta, i))) have.set(i);
      onProgress?.(i + 1, this.#meta.pieceCount);
    }
    return have;
  }

  /**
   * Checks `data` against piece `index`'s SHA-1 and writes it only if it matches. Returns
   * whether it matched; unverified bytes never reach the file. On success the store takes
   * `data` over (it serves blocks from it, then returns it to {@linkcode PieceStore.pool});
   * on failure the caller still owns it.
   */
  verifyAndWrite(index: number, data: Uint8Array): boolean {
    if (data.length !== pieceSize(this.#meta, index)) return false;
    // Hashed in place, synchronously: Web Crypto would first copy the whole piece.
    if (!bytesEqual(sha1Sync(data), pieceHash(this.#meta, index))) return false;
    this.#io(() => {
      this.#file.seekSync(index * this.#meta.pieceLength, Deno.SeekMode.Start);
      let off = 0;
      while (off < data.length) off += this.#file.writeSync(data.subarray(off));
    }, `cannot write piece ${index} to ${this.path}`);
    this.#evict(index);
    this.#cache.set(index, data);
    this.#trim();
    return true;
  }

  /**
   * Calls `use` with `length` bytes at `begin` of piece `index`, straight from the piece cache
   * (reading the piece into it first if needed): the view is valid only during the call, so
   * copy what you keep. The caller checks that the piece is held and the range lies inside it.
   */
  withBlock(index: number, begin: number, length: number, use: (block: Uint8Array) => void): void {
    let data = this.#cache.get(index);
    if (data) {
      // Move to the back: the map's order is the eviction order.
      this.#cache.delete(index);
    } else {
      data = this.#readPiece(index);
    }
    this.#cache.set(index, data);
    this.#trim();
    use(data.subarray(begin, begin + length));
  }

  /** A copy of `length` bytes at `begin` of piece `index`. */
  readBlock(index: number, begin: number, length: number): Uint8Array {
    let out = new Uint8Array(0);
    this.withBlock(index, begin, length, (b) => (out = b.slice()));
    return out;
  }

  /** Closes the file; later calls fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }

  #readPiece(index: number): Uint8Array {
    const size = pieceSize(this.#meta, index);
    const buf = this.pool.acquire(size);
    try {
      return this.#io(() => {
        this.#file.seekSync(index * this.#meta.pieceLength, Deno.SeekMode.Start);
        let off = 0;
        while (off < size) {
          const n = this.#file.readSync(buf.subarray(off));
          if (n === null) throw new Error("file is shorter than expected");
          off += n;
        }
        return buf;
      }, `cannot read piece ${index} from ${this.path}`);
    } catch (e) {
      this.pool.release(buf);
      throw e;
    }
  }

  #trim(): void {
    while (this.#cache.size > CACHE_PIECES) this.#evict(this.#cache.keys().next().value!);
  }

  #evict(index: number): void {
    const data = this.#cache.get(index);
    if (!data) return;
    this.#cache.delete(index);
    // Nobody else holds a view: blocks are copied out synchronously in withBlock.
    this.pool.release(data);
  }

  /**
   * Runs a seek and its read or write synchronously. A piece is at most a few MiB of page-cache
   * copying, and doing it inline means it can neither interleave with another seek nor queue up
   * behind a busy socket: with async file ops, a fast download finished pieces faster than the
   * event loop got round to writing them, and hundreds of MiB waited in memory.
   */
  #io<T>(fn: () => T, what: string): T {
    try {
      return fn();
    } catch (e) {
      throw new PieceStoreError(`${what}: ${systemReason(e)}`, { cause: e });
    }
  }
}

function isZero(data: Uint8Array): boolean {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.byteLength >> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  for (let i = words.length << 2; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}

async function wrap<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new PieceStoreError(`${what}: ${systemReason(e)}`, { cause: e });
  }
}
