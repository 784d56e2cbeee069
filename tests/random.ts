/**
 * A seeded random number generator for tests: the same seed gives the same numbers on every
 * machine, so a failing case can be replayed.
 *
 * @example
 * ```ts
 * import { mulberry32 } from "./random.ts";
 * const random = mulberry32(42);
 * random(); // a number in [0, 1), always the same first one for seed 42
 * ```
 * @module
 */

/** Mulberry32: a small, well-mixed generator of numbers in [0, 1), a stand-in for Math.random. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
