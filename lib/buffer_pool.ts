/**
 * A pool of equal-size buffers. Pieces are a mebibyte each and a download churns through
 * hundreds of them: reusing their memory keeps a peer's resident size flat instead of leaving
 * the garbage collector to catch up with hundreds of MiB of dead buffers.
 *
 * @example
 * ```ts
 * import { BufferPool } from "./buffer_pool.ts";
 * const pool = new BufferPool(1 << 20, 8);
 * const buf = pool.acquire(1000); // a 1000-byte view of a pooled 1 MiB buffer
 * pool.release(buf);
 * ```
 * @module
 */

/** Hands out views of `size`-byte buffers and takes them back for reuse. */
export class BufferPool {
  readonly #free: ArrayBuffer[] = [];
  /** Buffers allocated so far (a steady pool stops growing this). */
  made = 0;

  /** Makes a pool of `size`-byte buffers keeping at most `maxFree` idle ones. */
  constructor(readonly size: number, readonly maxFree = 32) {}

  /** Idle buffers held. */
  get idle(): number {
    return this.#free.length;
  }

  /** A view of `length` bytes (default: the whole size) at the start of a pooled buffer. */
  acquire(length = this.size): Uint8Array {
    if (length > this.size) throw new RangeError(`${length} bytes exceed the pool's ${this.size}`);
    let ab = this.#free.pop();
    if (!ab) {
      ab = new ArrayBuffer(this.size);
      this.made++;
    }
    return new Uint8Array(ab, 0, length);
  }

  /**
   * Gives a buffer back. The caller must hold no other view of it afterwards; views not made by
   * this pool are ignored.
   */
  release(view: Uint8Array): void {
    const ab = view.buffer;
    if (!(ab instanceof ArrayBuffer) || ab.byteLength !== this.size) return;
    if (this.#free.length < this.maxFree) this.#free.push(ab);
  }
}
