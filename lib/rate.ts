/**
 * A transfer rate over a sliding window, for progress lines, the choker's tit-for-tat and
 * benchmark summaries.
 *
 * @example
 * ```ts
 * import { RateMeter } from "./rate.ts";
 * const m = new RateMeter(5000);
 * m.add(1_000_000, 0);
 * m.rate(1000); // 200000 bytes/s: 1 MB over the 5 s window
 * ```
 * @module
 */

/** Bytes per second over the last `windowMs` milliseconds, kept in one-second buckets. */
export class RateMeter {
  readonly #buckets: Float64Array;
  #bucketStart: number[];
  #total = 0;

  /** Makes a meter averaging over `windowMs` (default 5 s). */
  constructor(readonly windowMs = 5000) {
    const n = Math.max(1, Math.ceil(windowMs / 1000));
    this.#buckets = new Float64Array(n);
    this.#bucketStart = new Array(n).fill(-Infinity);
  }

  /** Every byte ever added. */
  get total(): number {
    return this.#total;
  }

  /** Records `bytes` transferred at time `now` (ms). */
  add(bytes: number, now: number = Date.now()): void {
    const second = Math.floor(now / 1000);
    const i = second % this.#buckets.length;
    if (this.#bucketStart[i] !== second) {
      this.#bucketStart[i] = second;
      this.#buckets[i] = 0;
    }
    this.#buckets[i] += bytes;
    this.#total += bytes;
  }

  /**
   * Bytes per second over the window ending at `now` (ms). A meter younger than its window
   * (`startedAt`, ms) averages over its age instead, so a new connection's rate is not
   * underestimated.
   */
  rate(now: number = Date.now(), startedAt?: number): number {
    const second = Math.floor(now / 1000);
    let sum = 0;
    for (let i = 0; i < this.#buckets.length; i++) {
      if (second - this.#bucketStart[i] < this.#buckets.length) sum += this.#buckets[i];
    }
    const span = startedAt === undefined
      ? this.windowMs
      : Math.max(1000, Math.min(this.windowMs, now - startedAt));
    return sum / (span / 1000);
  }
}
