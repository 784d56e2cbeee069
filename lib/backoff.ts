/**
 * Exponential back-off with jitter, for retrying the tracker without hammering it.
 *
 * @example
 * ```ts
 * import { Backoff } from "./backoff.ts";
 * const b = new Backoff({ initialMs: 1000, maxMs: 30_000, random: () => 0.5 });
 * b.next(); // 1000
 * b.next(); // 2000
 * b.reset();
 * ```
 * @module
 */

/** Back-off settings. */
export interface BackoffOptions {
  /** First delay (ms, default 1 s). */
  initialMs?: number;
  /** Longest delay (ms, default 30 s). */
  maxMs?: number;
  /** Random numbers in [0, 1), for ±20 % jitter (0.5 means none). */
  random?: () => number;
}

/** Successive delays that double up to a ceiling. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #random: () => number;
  #attempt = 0;

  /** Makes a back-off at its first step. */
  constructor(options: BackoffOptions = {}) {
    this.#initial = options.initialMs ?? 1000;
    this.#max = options.maxMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The delay before the next try (ms). */
  next(): number {
    const base = Math.min(this.#max, this.#initial * 2 ** this.#attempt);
    this.#attempt++;
    const jitter = 1 + (this.#random() - 0.5) * 0.4;
    return Math.round(Math.min(this.#max, base * jitter));
  }

  /** Back to the first step, after a success. */
  reset(): void {
    this.#attempt = 0;
  }
}
