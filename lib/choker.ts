/**
 * Who we upload to: a few regular unchoke slots go to the interested peers that give us the best
 * rate (tit-for-tat; when we are seeding, those we upload to fastest), plus one optimistic slot
 * that rotates so newcomers get a chance to prove themselves. Pure logic with an injected clock.
 *
 * @example
 * ```ts
 * import { Choker } from "./choker.ts";
 * const choker = new Choker({ slots: 2 });
 * const unchoked = choker.rechoke([
 *   { key: "a", interested: true, rate: 5e6, connectedAt: 0 },
 *   { key: "b", interested: true, rate: 1e6, connectedAt: 0 },
 *   { key: "c", interested: true, rate: 9e6, connectedAt: 0 },
 * ], 0);
 * // regular slots: c and a; the optimistic slot: b
 * ```
 * @module
 */

/** What the choker knows about one connected peer. */
export interface ChokeCandidate {
  /** The connection's key. */
  key: string;
  /** The peer wants something we have. */
  interested: boolean;
  /** Bytes per second, recent: what it sends us (leeching) or we send it (seeding). */
  rate: number;
  /** When we connected (ms), so the optimistic slot can favour newcomers. */
  connectedAt: number;
}

/** Choker timing and slots. */
export interface ChokerOptions {
  /** Regular unchoke slots (default 4). */
  slots?: number;
  /** Rechokes between optimistic rotations (default 3, i.e. 30 s at BEP 3's 10 s rechoke). */
  optimisticEvery?: number;
  /** A peer connected less than this long ago (ms) counts as new: 3× the optimistic chance. */
  newPeerMs?: number;
  /** Random numbers in [0, 1). */
  random?: () => number;
}

/** Decides which peers are unchoked at each rechoke; see the module doc. */
export class Choker {
  readonly #slots: number;
  readonly #optimisticEvery: number;
  readonly #newPeerMs: number;
  readonly #random: () => number;
  #round = 0;
  #optimistic: string | undefined;

  /** Makes a choker. */
  constructor(options: ChokerOptions = {}) {
    this.#slots = options.slots ?? 4;
    this.#optimisticEvery = options.optimisticEvery ?? 3;
    this.#newPeerMs = options.newPeerMs ?? 60_000;
    this.#random = options.random ?? Math.random;
  }

  /** The peer in the optimistic slot, if any. */
  get optimistic(): string | undefined {
    return this.#optimistic;
  }

  /** Returns the keys to unchoke now; every other peer is choked. */
  rechoke(peers: readonly ChokeCandidate[], now: number): Set<string> {
    const interested = peers.filter((p) => p.interested);
    const ranked = [...interested].sort((a, b) => b.rate - a.rate);
    const unchoked = new Set(ranked.slice(0, this.#slots).map((p) => p.key));
    const rest = interested.filter((p) => !unchoked.has(p.key));
    const current = rest.find((p) => p.key === this.#optimistic);
    if (this.#round % this.#optimisticEvery === 0 || !current) {
      this.#optimistic = this.#pickOptimistic(rest, now);
    }
    this.#round++;
    if (this.#optimistic !== undefined) unchoked.add(this.#optimistic);
    return unchoked;
  }

  #pickOptimistic(rest: ChokeCandidate[], now: number): string | undefined {
    if (rest.length === 0) return undefined;
    const weights = rest.map((p) => (now - p.connectedAt < this.#newPeerMs ? 3 : 1));
    let r = this.#random() * weights.reduce((a, b) => a + b, 0);
    for (let i = 0; i < rest.length; i++) {
      r -= weights[i];
      if (r < 0) return rest[i].key;
    }
    return rest[rest.length - 1].key;
  }
}

/** A connected peer as {@linkcode pickIdleUnchoke} sees it. */
export interface IdleCandidate extends ChokeCandidate {
  /** We upload to it now. */
  unchoked: boolean;
}

/**
 * Between rechokes, our uplink can run dry although peers want our pieces: the unchoked ones may
 * have nothing left to ask of us (what we hold is already on its way to them from others). Then
 * one more interested peer is unchoked, the one giving us the best rate (the newest on a tie),
 * so upload capacity is not wasted waiting for the next rechoke. Returns its key, or undefined
 * when `maxUnchoked` peers are unchoked already or nobody choked is interested.
 *
 * @example
 * ```ts
 * import { pickIdleUnchoke } from "./choker.ts";
 * pickIdleUnchoke([
 *   { key: "a", interested: true, unchoked: true, rate: 0, connectedAt: 0 },
 *   { key: "b", interested: true, unchoked: false, rate: 2e6, connectedAt: 0 },
 * ], 9); // "b"
 * ```
 */
export function pickIdleUnchoke(
  peers: readonly IdleCandidate[],
  maxUnchoked: number,
): string | undefined {
  let unchoked = 0;
  let best: IdleCandidate | undefined;
  for (const p of peers) {
    if (p.unchoked) {
      unchoked++;
      continue;
    }
    if (!p.interested) continue;
    if (
      !best || p.rate > best.rate || (p.rate === best.rate && p.connectedAt > best.connectedAt)
    ) best = p;
  }
  return unchoked < maxUnchoked ? best?.key : undefined;
}
