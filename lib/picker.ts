/**
 * Which blocks to ask which peer for: rarest first (rarity counted over every peer's bitfield,
 * random among equals), pieces already started finished first, and endgame mode at the end, when
 * the last outstanding blocks are asked of several peers and the losers are cancelled.
 *
 * Pure bookkeeping, no I/O: the peer engine tells it what peers hold and what arrived, and it
 * answers with block requests. Peers are named by any string key.
 *
 * @example
 * ```ts
 * import { Bitfield } from "./bitfield.ts";
 * import { PiecePicker } from "./picker.ts";
 * const picker = new PiecePicker({ pieceCount: 4, pieceLength: 32768, length: 131072 }, new Bitfield(4));
 * const theirs = Bitfield.full(4);
 * picker.peerJoined(theirs);
 * picker.request("peer-a", theirs, 2); // two 16 KiB blocks of one piece
 * ```
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import { BLOCK_LENGTH } from "./wire.ts";

/** One block to request: `length` bytes at `begin` within piece `index`. */
export interface BlockRequest {
  /** Piece index. */
  index: number;
  /** Byte offset within the piece. */
  begin: number;
  /** Bytes requested. */
  length: number;
}

/** The shape of the file the picker plans for. */
export interface PieceLayout {
  /** Number of pieces. */
  pieceCount: number;
  /** Bytes per piece (the last may be shorter). */
  pieceLength: number;
  /** Total bytes. */
  length: number;
}

/** What {@linkcode PiecePicker.received} concluded about a block that arrived. */
export interface ReceivedResult {
  /** False when the block was not wanted (unsolicited, duplicate or misaligned): drop it. */
  accepted: boolean;
  /** True when this block completed its piece, which is now ready to be hashed. */
  pieceComplete: boolean;
  /** Other peers that were asked for the same block (endgame) and should get a cancel. */
  cancel: string[];
}

const MAX_OWNERS = 2;
const FREE = 0;
const REQUESTED = 1;
const RECEIVED = 2;

interface PieceInProgress {
  state: Uint8Array;
  owners: (string[] | undefined)[];
  received: number;
  /** True once every block arrived: waiting for its hash check. */
  verifying: boolean;
  /**
   * Set for a piece that failed its hash with blocks from several peers: it is then fetched from
   * one peer only (`owner`), so the next failure names the culprit without doubt.
   */
  exclusive: boolean;
  /** The one peer an exclusive piece is being fetched from. */
  owner: string | undefined;
}

/** Plans block requests across peers; see the module doc. */
export class PiecePicker {
  readonly #layout: PieceLayout;
  readonly #have: Bitfield;
  readonly #availability: Uint32Array;
  readonly #active = new Map<number, PieceInProgress>();
  readonly #outstanding = new Map<string, Set<number>>();
  readonly #random: () => number;
  readonly #exclusiveNext = new Set<number>();
  /** Pieces fewer than this many held are picked at random rather than rarest first. */
  randomFirst = 0;

  /**
   * Makes a picker for a file of `layout`, of which `have` is already held. `random` returns
   * numbers in [0, 1) and breaks ties between equally rare pieces.
   */
  constructor(layout: PieceLayout, have: Bitfield, random: () => number = Math.random) {
    this.#layout = layout;
    this.#have = have;
    this.#availability = new Uint32Array(layout.pieceCount);
    this.#random = random;
  }

  /** Blocks in piece `index`. */
  blockCount(index: number): number {
    return Math.ceil(this.pieceLength(index) / BLOCK_LENGTH);
  }

  /** Bytes in piece `index`. */
  pieceLength(index: number): number {
    const { pieceLength, length } = this.#layout;
    return Math.min(pieceLength, length - index * pieceLength);
  }

  /** How many known peers hold piece `index`. */
  availability(index: number): number {
    return this.#availability[index];
  }

  /** Pieces currently being downloaded. */
  get activePieces(): number[] {
    return [...this.#active.keys()];
  }

  /** Blocks `peer` has been asked for and not yet delivered. */
  outstanding(peer: string): number {
    return this.#outstanding.get(peer)?.size ?? 0;
  }

  /** Counts a peer's pieces into availability. */
  peerJoined(bits: Bitfield): void {
    for (let i = 0; i < bits.size; i++) if (bits.has(i)) this.#availability[i]++;
  }

  /** Removes a departed peer's pieces from availability (outstanding blocks: {@linkcode release}). */
  peerLeft(bits: Bitfield): void {
    for (let i = 0; i < bits.size; i++) {
      if (bits.has(i) && this.#availability[i] > 0) this.#availability[i]--;
    }
  }

  /** Counts one more holder of piece `index` (a `have` message). */
  peerHas(index: number): void {
    this.#availability[index]++;
  }

  /** True when `peer` holds something we still lack. */
  interesting(bits: Bitfield): boolean {
    if (this.#have.complete) return false;
    const a = bits.bytes;
    const b = this.#have.bytes;
    for (let i = 0; i < a.length; i++) if (a[i] & ~b[i]) return true;
    return false;
  }

  /**
   * Picks up to `max` blocks for `peer`, which holds `bits`, and marks them requested. Blocks of
   * started pieces come first, then new pieces rarest first, then (endgame) blocks already asked
   * of others.
   */
  request(peer: string, bits: Bitfield, max: number): BlockRequest[] {
    const out: BlockRequest[] = [];
    let mine = this.#outstanding.get(peer);
    if (!mine) this.#outstanding.set(peer, mine = new Set());
    if (max <= 0) return out;
    // 1. Finish started pieces first, so complete pieces (and `have`s) appear soon.
    for (const [index, p] of this.#active) {
      if (p.verifying || !bits.has(index)) continue;
      this.#take(peer, mine, index, p, FREE, max, out);
      if (out.length >= max) return out;
    }
    // 2. New pieces, rarest first.
    while (out.length < max) {
      const index = this.#pickNew(bits);
      if (index < 0) break;
      const p = this.#start(index);
      this.#take(peer, mine, index, p, FREE, max, out);
    }
    // 3. Endgame: nothing left to start, so double up on blocks still in flight elsewhere.
    if (out.length < max && this.endgame) {
      for (const [index, p] of this.#active) {
        if (p.verifying || !bits.has(index)) continue;
        this.#take(peer, mine, index, p, REQUESTED, max, out);
        if (out.length >= max) break;
      }
    }
    return out;
  }

  /** True when every missing piece is started, so remaining blocks may be asked of several peers. */
  get endgame(): boolean {
    return this.#have.count + this.#active.size >= this.#layout.pieceCount;
  }

  /** Records a block that arrived from `peer`; see {@linkcode ReceivedResult}. */
  received(peer: string, index: number, begin: number, length: number): ReceivedResult {
    const p = this.#active.get(index);
    const block = begin / BLOCK_LENGTH;
    const none: ReceivedResult = { accepted: false, pieceComplete: false, cancel: [] };
    if (!p || p.verifying || !Number.isInteger(block) || block >= p.state.length) return none;
    if (length !== this.#blockLength(index, block)) return none;
    if (p.state[block] === RECEIVED) return none;
    const owners = p.owners[block] ?? [];
    if (!owners.includes(peer)) return none; // unsolicited
    // Only now is the request settled: a rejected block leaves it owed, so release() frees it.
    this.#outstanding.get(peer)?.delete(this.#key(index, block));
    p.state[block] = RECEIVED;
    p.received++;
    p.owners[block] = undefined;
    const cancel = owners.filter((o) => o !== peer);
    for (const o of cancel) this.#outstanding.get(o)?.delete(this.#key(index, block));
    const pieceComplete = p.received === p.state.length;
    if (pieceComplete) p.verifying = true;
    return { accepted: true, pieceComplete, cancel };
  }

  /**
   * Returns blocks asked of `peer` to the pool: all of them (it choked us or left), or just
   * `only`. Returns the requests released.
   */
  release(peer: string, only?: BlockRequest): BlockRequest[] {
    const mine = this.#outstanding.get(peer);
    if (!mine) return [];
    const keys = only ? [this.#key(only.index, only.begin / BLOCK_LENGTH)] : [...mine];
    const released: BlockRequest[] = [];
    for (const key of keys) {
      if (!mine.delete(key)) continue;
      const index = Math.floor(key / this.#blocksPerPiece);
      const block = key % this.#blocksPerPiece;
      const p = this.#active.get(index);
      if (!p || p.state[block] !== REQUESTED) continue;
      const owners = (p.owners[block] ?? []).filter((o) => o !== peer);
      p.owners[block] = owners.length > 0 ? owners : undefined;
      if (owners.length === 0) p.state[block] = FREE;
      released.push({
        index,
        begin: block * BLOCK_LENGTH,
        length: this.#blockLength(index, block),
      });
    }
    if (!only) {
      this.#outstanding.delete(peer);
      // It choked us or left: an exclusive piece may go to another single peer.
      for (const p of this.#active.values()) if (p.owner === peer) p.owner = undefined;
    }
    return released;
  }

  /** The piece passed its hash check and is written: it is held now. */
  pieceVerified(index: number): void {
    this.#active.delete(index);
    this.#have.set(index);
  }

  /**
   * The piece failed its hash check: forget its blocks so it is fetched again. With
   * `exclusive`, the next attempt takes every block from a single peer.
   */
  pieceFailed(index: number, exclusive = false): void {
    this.#active.delete(index);
    if (exclusive) this.#exclusiveNext.add(index);
  }

  get #blocksPerPiece(): number {
    return Math.ceil(this.#layout.pieceLength / BLOCK_LENGTH);
  }

  #key(index: number, block: number): number {
    return index * this.#blocksPerPiece + block;
  }

  #blockLength(index: number, block: number): number {
    return Math.min(BLOCK_LENGTH, this.pieceLength(index) - block * BLOCK_LENGTH);
  }

  #start(index: number): PieceInProgress {
    const n = this.blockCount(index);
    const p: PieceInProgress = {
      state: new Uint8Array(n),
      owners: new Array(n),
      received: 0,
      verifying: false,
      exclusive: this.#exclusiveNext.delete(index),
      owner: undefined,
    };
    this.#active.set(index, p);
    return p;
  }

  #take(
    peer: string,
    mine: Set<number>,
    index: number,
    p: PieceInProgress,
    want: number,
    max: number,
    out: BlockRequest[],
  ): void {
    if (p.exclusive) {
      if (p.owner !== undefined && p.owner !== peer) return;
      if (want === REQUESTED) return; // no endgame doubling on a piece under suspicion
      p.owner = peer;
    }
    for (let b = 0; b < p.state.length && out.length < max; b++) {
      if (p.state[b] !== want) continue;
      const owners = p.owners[b] ?? [];
      // In endgame a block is asked of at most two peers: enough to beat one slow peer,
      // without every uploader spending its budget on copies that will be thrown away.
      if (owners.includes(peer) || owners.length >= MAX_OWNERS) continue;
      owners.push(peer);
      p.owners[b] = owners;
      p.state[b] = REQUESTED;
      mine.add(this.#key(index, b));
      out.push({ index, begin: b * BLOCK_LENGTH, length: this.#blockLength(index, b) });
    }
  }

  /** Rarest piece `bits` holds that we neither hold nor have started; -1 if none. */
  #pickNew(bits: Bitfield): number {
    const random = this.#have.count < this.randomFirst;
    let best = -1;
    let bestAvail = Infinity;
    let ties = 0;
    for (let i = 0; i < this.#layout.pieceCount; i++) {
      if (!bits.has(i) || this.#have.has(i) || this.#active.has(i)) continue;
      const a = random ? 0 : this.#availability[i];
      if (a < bestAvail) {
        best = i;
        bestAvail = a;
        ties = 1;
      } else if (a === bestAvail) {
        // Reservoir sampling: each equally rare piece ends up chosen with equal chance.
        ties++;
        if (this.#random() * ties < 1) best = i;
      }
    }
    return best;
  }
}
