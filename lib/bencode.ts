/**
 * Bencoding (BEP 3): the serialisation of .torrent files, the info dictionary whose SHA-1 is the
 * info-hash, and HTTP tracker responses.
 *
 * Byte strings stay `Uint8Array` so binary values (piece hashes, peer ids) survive; dictionary
 * keys are decoded as UTF-8 text (bytes that are not UTF-8, such as the info-hash keys of a scrape
 * answer, become U+FFFD: the order and uniqueness checks run on the raw bytes first) and are
 * emitted in sorted raw-byte order, as BEP 3 requires.
 *
 * @example
 * ```ts
 * import { decode, encode } from "./bencode.ts";
 * const bytes = encode({ name: "a.iso", length: 3 });
 * const value = decode(bytes); // { length: 3, name: Uint8Array("a.iso") }
 * ```
 * @module
 */

/** A bencoded value: integer, byte string, list or dictionary. */
export type BValue = number | bigint | Uint8Array | string | BValue[] | BDict;
/** A bencoded dictionary. */
export interface BDict {
  [key: string]: BValue;
}

/** Raised when input is not valid bencoding or exceeds the decoder's limits. */
export class BencodeError extends Error {
  /** Builds the error; `offset` is where in the input the problem was found. */
  constructor(message: string, readonly offset: number, options?: ErrorOptions) {
    super(`${message} at byte ${offset}`, options);
    this.name = "BencodeError";
  }
}

/** Limits that bound the work and memory one decode may take. */
export interface DecodeLimits {
  /** Deepest nesting of lists and dictionaries accepted (default 32). */
  maxDepth?: number;
  /** Largest total input accepted, in bytes (default 16 MiB). */
  maxBytes?: number;
}

const encoder = new TextEncoder();

/** Encodes a value. Strings are UTF-8; integers must be safe integers or bigints. */
export function encode(value: BValue): Uint8Array {
  const parts: Uint8Array[] = [];
  encodeInto(value, parts);
  return concat(parts);
}

/** Joins byte arrays into one new array. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function encodeInto(value: BValue, parts: Uint8Array[]): void {
  if (typeof value === "number" || typeof value === "bigint") {
    if (typeof value === "number" && !Number.isSafeInteger(value)) {
      throw new TypeError(`bencode: ${value} is not an integer`);
    }
    parts.push(encoder.encode(`i${value}e`));
  } else if (typeof value === "string") {
    const bytes = encoder.encode(value);
    parts.push(encoder.encode(`${bytes.length}:`), bytes);
  } else if (value instanceof Uint8Array) {
    parts.push(encoder.encode(`${value.length}:`), value);
  } else if (Array.isArray(value)) {
    parts.push(encoder.encode("l"));
    for (const item of value) encodeInto(item, parts);
    parts.push(encoder.encode("e"));
  } else {
    parts.push(encoder.encode("d"));
    const keys = Object.keys(value).map((k) => [k, encoder.encode(k)] as const);
    keys.sort((a, b) => compareBytes(a[1], b[1]));
    for (const [k, kb] of keys) {
      parts.push(encoder.encode(`${kb.length}:`), kb);
      encodeInto(value[k], parts);
    }
    parts.push(encoder.encode("e"));
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

const textDecoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Decodes exactly one value that must fill the whole input. Integers outside the safe range
 * come back as bigint. Throws {@linkcode BencodeError} on any malformation.
 */
export function decode(input: Uint8Array, limits: DecodeLimits = {}): BValue {
  const d = new Decoder(input, limits);
  const v = d.value(0);
  if (d.pos !== input.length) throw new BencodeError("trailing data", d.pos);
  return v;
}

/**
 * Decodes one value and also returns the raw byte span of the top-level dictionary's `key`
 * entry, so the info-hash can be taken over the exact bytes a .torrent file holds.
 */
export function decodeWithSpan(
  input: Uint8Array,
  key: string,
  limits: DecodeLimits = {},
): { value: BValue; span?: Uint8Array } {
  const d = new Decoder(input, limits);
  d.spanKey = key;
  const value = d.value(0);
  if (d.pos !== input.length) throw new BencodeError("trailing data", d.pos);
  return { value, span: d.span };
}

class Decoder {
  pos = 0;
  spanKey?: string;
  span?: Uint8Array;
  readonly maxDepth: number;

  constructor(readonly buf: Uint8Array, limits: DecodeLimits) {
    this.maxDepth = limits.maxDepth ?? 32;
    const maxBytes = limits.maxBytes ?? 16 * 1024 * 1024;
    if (buf.length > maxBytes) {
      throw new BencodeError(`input of ${buf.length} bytes exceeds the ${maxBytes}-byte limit`, 0);
    }
  }

  value(depth: number): BValue {
    if (depth > this.maxDepth) throw new BencodeError("nesting too deep", this.pos);
    const c = this.buf[this.pos];
    if (c === undefined) throw new BencodeError("unexpected end of input", this.pos);
    if (c === 0x69 /* i */) return this.integer();
    if (c >= 0x30 && c <= 0x39) return this.bytes();
    if (c === 0x6c /* l */) {
      this.pos++;
      const list: BValue[] = [];
      while (this.peek() !== 0x65) list.push(this.value(depth + 1));
      this.pos++;
      return list;
    }
    if (c === 0x64 /* d */) {
      this.pos++;
      const dict: BDict = Object.create(null);
      let prev: Uint8Array | undefined;
      while (this.peek() !== 0x65) {
        const keyStart = this.pos;
        const key = this.bytes();
        if (prev && compareBytes(prev, key) >= 0) {
          throw new BencodeError("dictionary keys not sorted or repeated", keyStart);
        }
        prev = key;
        const k = textDecoder.decode(key);
        const valueStart = this.pos;
        dict[k] = this.value(depth + 1);
        if (depth === 0 && this.spanKey === k) {
          this.span = this.buf.subarray(valueStart, this.pos);
        }
      }
      this.pos++;
      return dict;
    }
    throw new BencodeError(`unexpected byte 0x${c.toString(16)}`, this.pos);
  }

  peek(): number {
    const c = this.buf[this.pos];
    if (c === undefined) throw new BencodeError("unexpected end of input", this.pos);
    return c;
  }

  integer(): number | bigint {
    const start = ++this.pos;
    const end = this.buf.indexOf(0x65, start);
    if (end < 0 || end - start > 20) throw new BencodeError("unterminated integer", start);
    const text = String.fromCharCode(...this.buf.subarray(start, end));
    if (!/^(0|-?[1-9][0-9]*)$/.test(text)) throw new BencodeError("malformed integer", start);
    this.pos = end + 1;
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  }

  bytes(): Uint8Array {
    const start = this.pos;
    const colon = this.buf.indexOf(0x3a, start);
    if (colon < 0 || colon - start > 10) throw new BencodeError("malformed string length", start);
    const text = String.fromCharCode(...this.buf.subarray(start, colon));
    if (!/^(0|[1-9][0-9]*)$/.test(text)) throw new BencodeError("malformed string length", start);
    const len = Number(text);
    if (colon + 1 + len > this.buf.length) {
      throw new BencodeError(`string of ${len} bytes runs past the end`, start);
    }
    this.pos = colon + 1 + len;
    return this.buf.subarray(colon + 1, this.pos);
  }
}
