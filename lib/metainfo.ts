/**
 * The file's metainfo (BEP 3): its name, length, piece length and the SHA-1 of every piece, plus
 * the info-hash, the SHA-1 of the bencoded info dictionary, which names the swarm on the wire.
 *
 * @example
 * ```ts
 * import { hashFile, toTorrent } from "./metainfo.ts";
 * const meta = await hashFile("ubuntu-teste.iso", { pieceLength: 1 << 20 });
 * meta.pieceCount; // 500 for a 500 MiB file
 * await Deno.writeFile("ubuntu-teste.iso.torrent", toTorrent(meta, "http://localhost:8000/announce"));
 * ```
 * @module
 */

import {
  type BDict,
  BencodeError,
  type BValue,
  decode,
  decodeWithSpan,
  encode,
} from "./bencode.ts";
import { sha1, sha1Sync, toHex } from "./hash.ts";

/** Default piece length: 1 MiB, so the seed's 500 MiB file has 500 pieces. */
export const DEFAULT_PIECE_LENGTH = 1 << 20;
/** Largest piece length accepted from elsewhere (16 MiB), bounding a piece buffer. */
export const MAX_PIECE_LENGTH = 16 << 20;
/** Largest number of pieces accepted from elsewhere, bounding bitfields and hash tables. */
export const MAX_PIECES = 1 << 20;

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Raised when metainfo is malformed or inconsistent. */
export class MetainfoError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "MetainfoError";
  }
}

/** Everything a peer needs to know about the shared file. */
export interface Metainfo {
  /** The file's name (the info dictionary's `name`). */
  readonly name: string;
  /** The file's length in bytes. */
  readonly length: number;
  /** Bytes per piece; the last piece may be shorter. */
  readonly pieceLength: number;
  /** Number of pieces. */
  readonly pieceCount: number;
  /** The 20-byte SHA-1 of every piece, concatenated (the info dictionary's `pieces`). */
  readonly pieces: Uint8Array;
  /** The bencoded info dictionary, exactly as hashed. */
  readonly info: Uint8Array;
  /** SHA-1 of {@linkcode Metainfo.info}. */
  readonly infoHash: Uint8Array;
  /** The info-hash in lower-case hex. */
  readonly infoHashHex: string;
}

/** Length in bytes of piece `index`. */
export function pieceSize(meta: Pick<Metainfo, "length" | "pieceLength">, index: number): number {
  const start = index * meta.pieceLength;
  return Math.max(0, Math.min(meta.pieceLength, meta.length - start));
}

/** The expected SHA-1 of piece `index`. */
export function pieceHash(meta: Metainfo, index: number): Uint8Array {
  return meta.pieces.subarray(index * 20, index * 20 + 20);
}

/** Builds metainfo from its parts, computing the bencoded info dictionary and the info-hash. */
export async function makeMetainfo(
  name: string,
  length: number,
  pieceLength: number,
  pieces: Uint8Array,
): Promise<Metainfo> {
  const info = encode({ length, name, "piece length": pieceLength, pieces });
  return await fromInfo(info);
}

/**
 * Reads a bencoded info dictionary received from elsewhere (the tracker, a .torrent file),
 * checking every field and bound before trusting it.
 */
export async function fromInfo(info: Uint8Array): Promise<Metainfo> {
  let value: BValue;
  try {
    value = decode(info, { maxDepth: 4, maxBytes: MAX_PIECES * 20 + 4096 });
  } catch (e) {
    throw new MetainfoError(`info dictionary is not valid bencoding: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const d = asDict(value, "info");
  let name: string;
  try {
    name = strictUtf8.decode(asBytes(d.name, "name"));
  } catch (e) {
    if (e instanceof MetainfoError) throw e;
    throw new MetainfoError("name is not valid UTF-8");
  }
  if (
    name === "" || name.includes("/") || name.includes("\\") || name === "." || name === ".." ||
    // Control characters: a NUL cannot be in a file name, and escapes would reach terminals.
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f]/.test(name)
  ) {
    throw new MetainfoError(`unsafe file name ${JSON.stringify(name)}`);
  }
  if (d.files !== undefined) throw new MetainfoError("multi-file torrents are not supported");
  const length = asInt(d.length, "length");
  const pieceLength = asInt(d["piece length"], "piece length");
  const pieces = asBytes(d.pieces, "pieces");
  if (length < 1) throw new MetainfoError("length must be positive");
  if (pieceLength < 1 || pieceLength > MAX_PIECE_LENGTH) {
    throw new MetainfoError(`piece length ${pieceLength} out of range`);
  }
  const pieceCount = Math.ceil(length / pieceLength);
  if (pieceCount > MAX_PIECES) throw new MetainfoError(`too many pieces (${pieceCount})`);
  if (pieces.length !== pieceCount * 20) {
    throw new MetainfoError(`pieces holds ${pieces.length} bytes, expected ${pieceCount * 20}`);
  }
  const infoHash = await sha1(info);
  return {
    name,
    length,
    pieceLength,
    pieceCount,
    pieces: pieces.slice(),
    info: info.slice(),
    infoHash,
    infoHashHex: toHex(infoHash),
  };
}

/** Options for {@linkcode hashFile}. */
export interface HashFileOptions {
  /** Bytes per piece (default {@linkcode DEFAULT_PIECE_LENGTH}). */
  pieceLength?: number;
  /** Name recorded in the metainfo (default: the path's last component). */
  name?: string;
  /** Called after each piece is hashed. */
  onProgress?: (done: number, total: number) => void;
}

/** Hashes a file into pieces, reading one piece at a time so memory stays flat. */
export async function hashFile(path: string, options: HashFileOptions = {}): Promise<Metainfo> {
  const pieceLength = options.pieceLength ?? DEFAULT_PIECE_LENGTH;
  const name = options.name ?? path.split(/[/\\]/).pop()!;
  using file = await Deno.open(path, { read: true });
  const length = (await file.stat()).size;
  if (length === 0) throw new MetainfoError(`${path} is empty`);
  const count = Math.ceil(length / pieceLength);
  const pieces = new Uint8Array(count * 20);
  // One reused buffer and an in-place hash: no per-piece garbage, so memory stays flat.
  const buf = new Uint8Array(pieceLength);
  for (let i = 0; i < count; i++) {
    const chunk = buf.subarray(0, Math.min(pieceLength, length - i * pieceLength));
    await readFull(file, chunk);
    pieces.set(sha1Sync(chunk), i * 20);
    options.onProgress?.(i + 1, count);
  }
  return await makeMetainfo(name, length, pieceLength, pieces);
}

async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<void> {
  let off = 0;
  while (off < into.length) {
    const n = await file.read(into.subarray(off));
    if (n === null) throw new MetainfoError("file shrank while it was being hashed");
    off += n;
  }
}

/** A standard single-file .torrent (BEP 3) announcing to `announce`. */
export function toTorrent(meta: Metainfo, announce: string): Uint8Array {
  // Splice the exact info bytes in, so the .torrent's info-hash is the one our peers use.
  const head = encode({ announce, "created by": "swarm", "creation date": 0 } as BDict);
  const prefix = head.subarray(0, head.length - 1); // drop the closing "e"
  const key = new TextEncoder().encode("4:info");
  const out = new Uint8Array(prefix.length + key.length + meta.info.length + 1);
  out.set(prefix, 0);
  out.set(key, prefix.length);
  out.set(meta.info, prefix.length + key.length);
  out[out.length - 1] = 0x65;
  return out;
}

/** Reads a .torrent file's bytes: its announce URL and metainfo. */
export async function parseTorrent(
  bytes: Uint8Array,
): Promise<{ announce?: string; meta: Metainfo }> {
  let parsed: { value: BValue; span?: Uint8Array };
  try {
    parsed = decodeWithSpan(bytes, "info", { maxDepth: 8, maxBytes: MAX_PIECES * 20 + 65536 });
  } catch (e) {
    const why = e instanceof BencodeError ? e.message : String(e);
    throw new MetainfoError(`not a valid .torrent: ${why}`, { cause: e });
  }
  const d = asDict(parsed.value, "torrent");
  if (!parsed.span) throw new MetainfoError("the .torrent has no info dictionary");
  const announce = d.announce instanceof Uint8Array
    ? new TextDecoder().decode(d.announce)
    : undefined;
  return { announce, meta: await fromInfo(parsed.span) };
}

function asDict(v: BValue | undefined, what: string): BDict {
  if (v === undefined || typeof v !== "object" || v instanceof Uint8Array || Array.isArray(v)) {
    throw new MetainfoError(`${what} is not a dictionary`);
  }
  return v;
}

function asInt(v: BValue | undefined, what: string): number {
  if (typeof v !== "number") throw new MetainfoError(`${what} is missing or not an integer`);
  return v;
}

function asBytes(v: BValue | undefined, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new MetainfoError(`${what} is missing or not a string`);
  return v;
}
