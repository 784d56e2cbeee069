/**
 * A shared byte budget per second (a token bucket), for `--up-rate` and `--down-rate`: every
 * connection of a peer draws from the same bucket, first come first served, so the cap holds for
 * the peer as a whole however many peers it talks to, loopback included.
 *
 * The bucket itself ({@linkcode TokenBucket}) is pure arithmetic on an injected clock;
 * {@linkcode RateLimiter} adds the waiting.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "./rate_limiter.ts";
 * const up = new RateLimiter(4 * 1024 * 1024); // 4 MiB/s
 * const n = await up.acquire(16384); // resolves when 16 KiB may be sent
 * ```
 * @module
 */

/** Token bucket arithmetic: `rate` bytes per second, holding at most `burst` bytes. */
export class TokenBucket {
  #tokens: number;
  #last: number;

  /** Makes a bucket that starts with `initial` tokens (default: empty) at time `now` (ms). */
  constructor(readonly rate: number, readonly burst: number, now: number, initial = 0) {
    if (!(rate > 0) || !(burst > 0)) throw new RangeError("rate and burst must be positive");
    this.#tokens = Math.min(initial, burst);
    this.#last = now;
  }

  /** Tokens available at `now`. */
  available(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Takes up to `want` tokens at `now`; returns how many were taken (maybe 0). */
  take(want: number, now: number): number {
    this.#refill(now);
    const got = Math.max(0, Math.min(want, Math.floor(this.#tokens)));
    this.#tokens -= got;
    return got;
  }

  /** Puts back `n` tokens taken but not used (a read that returned fewer bytes). */
  giveBack(n: number): void {
    this.#tokens = Math.min(this.burst, this.#tokens + n);
  }

  /** Milliseconds from `now` until `n` tokens (at most the burst) are available. */
  waitFor(n: number, now: number): number {
    this.#refill(now);
    const need = Math.min(n, this.burst) - this.#tokens;
    return need <= 0 ? 0 : (need / this.rate) * 1000;
  }

  #refill(now: number): void {
    if (now > this.#last) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.rate);
      this.#last = now;
    }
  }
}

/** The smallest grant cap: one block with its message header. */
const BLOCK_GRANT = 16 * 1024 + 13;
/**
 * The largest grant cap: four blocks with their headers, so one connection cannot starve the
 * others for long, while each grant is still worth one large write.
 */
const MAX_GRANT = 4 * BLOCK_GRANT;
/**
 * Waiters are woken at most this often (ms). Every timer wake-up of a Deno process costs about
 * 0.15 ms of CPU; one per 16 KiB block at 4 MiB/s was a large share of a capped peer's CPU. Tokens
 * accrued meanwhile serve several waiters in one wake-up, within the bucket's burst.
 */
const MIN_WAKE_MS = 20;

/** Waits for a shared budget; see the module doc. */
export class RateLimiter {
  readonly #bucket: TokenBucket;
  /** Largest grant: about 50 ms of the rate, between one and four blocks. */
  readonly #maxGrant: number;
  readonly #queue: { want: number; resolve: (n: number) => void }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * Makes a limiter of `bytesPerSecond`. The burst is a tenth of a second's worth (at least two
   * grants), which keeps the rate smooth over any window longer than that.
   */
  constructor(
    readonly bytesPerSecond: number,
    readonly now: () => number = () => performance.now(),
  ) {
    this.#maxGrant = Math.round(Math.min(MAX_GRANT, Math.max(BLOCK_GRANT, bytesPerSecond / 20)));
    const burst = Math.max(2 * this.#maxGrant, bytesPerSecond / 10);
    this.#bucket = new TokenBucket(bytesPerSecond, burst, now());
  }

  /**
   * Resolves with a number of bytes from 1 to `want` that may be moved now: at most about 50 ms
   * of the rate, one to four blocks. Callers are served in order. After {@linkcode close},
   * resolves at once with `want`.
   */
  acquire(want: number): Promise<number> {
    want = Math.max(1, Math.min(want, this.#maxGrant));
    if (this.#closed) return Promise.resolve(want);
    if (this.#queue.length === 0 && this.#bucket.available(this.now()) >= want) {
      this.#bucket.take(want, this.now());
      return Promise.resolve(want);
    }
    return new Promise((resolve) => {
      this.#queue.push({ want, resolve });
      this.#pump();
    });
  }

  /** Returns `n` granted bytes that were not used, for the next caller. */
  giveBack(n: number): void {
    if (n <= 0 || this.#closed) return;
    this.#bucket.giveBack(n);
    if (this.#queue.length > 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#pump();
    }
  }

  /** Stops limiting: every waiter is released. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#queue.splice(0)) w.resolve(w.want);
  }

  #pump(): void {
    if (this.#timer !== undefined) return;
    const now = this.now();
    while (this.#queue.length > 0 && this.#bucket.available(now) >= this.#queue[0].want) {
      const head = this.#queue.shift()!;
      this.#bucket.take(head.want, now);
      head.resolve(head.want);
    }
    if (this.#queue.length > 0) {
      const wait = this.#bucket.waitFor(this.#queue[0].want, now);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, Math.max(MIN_WAKE_MS, Math.ceil(wait)));
    }
  }
}
