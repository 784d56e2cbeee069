/**
 * Which pieces a peer holds, as the BEP 3 `bitfield` message lays it out: piece 0 is the high bit
 * of the first byte, and spare bits at the end must be zero.
 *
 * @example
 * ```ts
 * import { Bitfield } from "./bitfield.ts";
 * const bf = new Bitfield(10);
 * bf.set(0);
 * bf.set(9);
 * bf.count; // 2
 * bf.toBytes(); // Uint8Array [0x80, 0x40]
 * ```
 * @module
 */

/** Raised when a bitfield received from elsewhere has the wrong size or spare bits set. */
export class BitfieldError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BitfieldError";
  }
}

/** A fixed-size set of piece indices with a running count. */
export class Bitfield {
  /** The raw bytes, in wire order. */
  readonly bytes: Uint8Array;
  #count = 0;

  /** Makes an empty bitfield for `size` pieces. */
  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`bad bitfield size ${size}`);
    this.bytes = new Uint8Array(Math.ceil(size / 8));
  }

  /** Bytes a bitfield of `size` pieces takes on the wire. */
  static byteLength(size: number): number {
    return Math.ceil(size / 8);
  }

  /**
   * Reads wire bytes for `size` pieces; throws {@linkcode BitfieldError} when the length is
   * wrong or a spare bit is set (BEP 3 says to drop such a peer).
   */
  static fromBytes(bytes: Uint8Array, size: number): Bitfield {
    const bf = new Bitfield(size);
    if (bytes.length !== bf.bytes.length) {
      throw new BitfieldError(`bitfield is ${bytes.length} bytes, expected ${bf.bytes.length}`);
    }
    const spare = bf.bytes.length * 8 - size;
    if (spare > 0 && (bytes[bytes.length - 1] & ((1 << spare) - 1)) !== 0) {
      throw new BitfieldError("bitfield has spare bits set");
    }
    bf.bytes.set(bytes);
    let n = 0;
    for (const b of bytes) n += POPCOUNT[b];
    bf.#count = n;
    return bf;
  }

  /** A bitfield with every piece set. */
  static full(size: number): Bitfield {
    const bf = new Bitfield(size);
    for (let i = 0; i < size; i++) bf.set(i);
    return bf;
  }

  /** How many pieces are set. */
  get count(): number {
    return this.#count;
  }

  /** True when every piece is set. */
  get complete(): boolean {
    return this.#count === this.size;
  }

  /** True when piece `i` is set; false for out-of-range indices. */
  has(i: number): boolean {
    if (!(i >= 0 && i < this.size) || !Number.isInteger(i)) return false;
    return (this.bytes[i >> 3] & (0x80 >> (i & 7))) !== 0;
  }

  /** Sets piece `i`; returns false if it was already set. Throws on an out-of-range index. */
  set(i: number): boolean {
    this.#check(i);
    const mask = 0x80 >> (i & 7);
    if (this.bytes[i >> 3] & mask) return false;
    this.bytes[i >> 3] |= mask;
    this.#count++;
    return true;
  }

  /** Clears piece `i`; returns false if it was not set. */
  clear(i: number): boolean {
    this.#check(i);
    const mask = 0x80 >> (i & 7);
    if (!(this.bytes[i >> 3] & mask)) return false;
    this.bytes[i >> 3] &= ~mask;
    this.#count--;
    return true;
  }

  /** The wire form (a copy). */
  toBytes(): Uint8Array {
    return this.bytes.slice();
  }

  /** Indices of every set piece, ascending. */
  *indices(): IterableIterator<number> {
    for (let i = 0; i < this.size; i++) if (this.has(i)) yield i;
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.size) {
      throw new RangeError(`piece index ${i} out of range 0..${this.size - 1}`);
    }
  }
}

const POPCOUNT = new Uint8Array(256);
for (let i = 0; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1];
