/**
 * The peer engine: everything a peer does over the wire for one file. It accepts and dials
 * connections, asks the {@linkcode PiecePicker} what to request, checks and stores pieces through
 * the {@linkcode PieceStore}, serves blocks to unchoked peers, lets the {@linkcode Choker} pick
 * whom to upload to, and reaps peers that stall or break the protocol.
 *
 * It does not talk to the tracker: the caller feeds it peers with {@linkcode Engine.connect}.
 *
 * @example
 * ```ts
 * import { Engine } from "./engine.ts";
 * const engine = new Engine({ meta, store, have, peerId, listener, log: console.log });
 * engine.start();
 * engine.connect("127.0.0.1", 9000, "localhost:9000");
 * await engine.completed;
 * ```
 * @module
 */

import { Bitfield, BitfieldError } from "./bitfield.ts";
import { Choker, pickIdleUnchoke } from "./choker.ts";
import { ipKey, refuseConnection } from "./conn_caps.ts";
import { type Metainfo, pieceSize } from "./metainfo.ts";
import { PeerConnection } from "./peer_connection.ts";
import { PiecePicker } from "./picker.ts";
import { RateLimiter } from "./rate_limiter.ts";
import type { PieceStore } from "./piece_store.ts";
import { BLOCK_LENGTH, clientName, MAX_REQUEST_LENGTH, type Message } from "./wire.ts";

/** Tunables; the defaults suit a real swarm, tests and demos shorten the timings. */
export interface EngineTuning {
  /**
   * Most blocks kept requested from one peer (default 128, i.e. 2 MiB in flight); fewer are
   * asked of a slow peer: about half a second of its rate.
   */
  pipeline: number;
  /** Regular unchoke slots (default 4) besides the optimistic one. */
  uploadSlots: number;
  /** Milliseconds between rechokes (default 10 s, as in BEP 3 practice). */
  rechokeMs: number;
  /** A peer that delivers no block for this long loses its requests to others (default 20 s). */
  requestTimeoutMs: number;
  /** Send a keep-alive after this much silence (default 60 s; BEP 3 drops after 2 min). */
  keepAliveMs: number;
  /** Drop a peer we heard nothing from for this long (default 180 s). */
  idleTimeoutMs: number;
  /** Most handshaken connections at once (default 50). */
  maxPeers: number;
  /** Most connections, handshaken or not, with one IP address (default 8). */
  maxPeersPerIp: number;
  /**
   * Leave loopback addresses out of `maxPeersPerIp` (default true): a local demo swarm runs
   * every peer on 127.0.0.1. An explicit `--max-peers-per-ip` applies to loopback too.
   */
  exemptLoopback: boolean;
  /** Most unserved requests one peer may queue before it is dropped (default 512). */
  maxQueuedRequests: number;
  /** Blocks bigger than this are refused (default 16 KiB); bigger than 128 KiB drops the peer. */
  maxBlockLength: number;
  /** Rechokes between optimistic unchoke rotations (default 3). */
  optimisticEvery: number;
  /** Pieces picked at random before rarest first takes over (default 4). */
  randomFirst: number;
}

/** Incoming connections allowed to be still in their handshake at once. */
const MAX_PENDING_HANDSHAKES = 16;
/** Fewest blocks kept requested from a peer, however slow it has been so far. */
const MIN_PIPELINE = 16;
/** Seconds of a peer's delivery rate kept requested from it. */
const PIPELINE_SECONDS = 0.5;
/** Longest a `have` message waits to share a write with other messages (ms). */
const HAVE_DELAY_MS = 100;
/** How often (ms) to look for an uplink that ran dry while peers want our pieces. */
const IDLE_CHECK_MS = 250;
/** Below this much queued (seconds of the upload cap), the uplink is about to run dry. */
const IDLE_QUEUE_SECONDS = 0.25;
/** Refused connections from one address are logged at most once in this many ms. */
const REFUSAL_LOG_MS = 10_000;

/** Defaults for {@linkcode EngineTuning}. */
export const DEFAULT_TUNING: EngineTuning = {
  pipeline: 128,
  uploadSlots: 4,
  rechokeMs: 10_000,
  requestTimeoutMs: 20_000,
  keepAliveMs: 60_000,
  idleTimeoutMs: 180_000,
  maxPeers: 50,
  maxPeersPerIp: 8,
  exemptLoopback: true,
  maxQueuedRequests: 512,
  maxBlockLength: BLOCK_LENGTH,
  optimisticEvery: 3,
  randomFirst: 4,
};

/** What the engine needs. */
export interface EngineOptions {
  /** The file. */
  meta: Metainfo;
  /** Where pieces are read and written. */
  store: PieceStore;
  /** Pieces already held; the engine sets more as they are verified. */
  have: Bitfield;
  /** Our 20-byte peer id. */
  peerId: Uint8Array;
  /** A bound listener for incoming peers. */
  listener: Deno.Listener;
  /** Where to print what happens. */
  log: (line: string) => void;
  /** Timing and limits. */
  tuning?: Partial<EngineTuning>;
  /** Called after each verified piece with the peers that supplied its blocks. */
  onPiece?: (index: number, from: string[]) => void;
  /** Called when the disk fails (full, unwritable): the peer cannot go on. */
  onFatal?: (error: Error) => void;
  /** Upload cap for the whole peer, bytes/s (`--up-rate`); unlimited when absent. */
  upRate?: number;
  /** Download cap for the whole peer, bytes/s (`--down-rate`); unlimited when absent. */
  downRate?: number;
  /** Upload nothing to anyone (a client-server client). */
  noUpload?: boolean;
}

/** Per-remote-peer counters, for summaries and for proving who exchanged with whom. */
export interface PeerStats {
  /** The peer's name (tracker id when known). */
  label: string;
  /** Its peer id, hex. */
  peerId: string;
  /** Bytes of blocks it sent us. */
  downloaded: number;
  /** Bytes of blocks we sent it. */
  uploaded: number;
  /** Pieces it holds. */
  pieces: number;
  /** Whether the connection is open. */
  connected: boolean;
}

/** The peer engine; see the module doc. */
export class Engine {
  readonly #o: EngineOptions;
  readonly #t: EngineTuning;
  readonly #picker: PiecePicker;
  readonly #choker: Choker;
  readonly #peers = new Map<string, PeerConnection>();
  /** Dials in progress: `address:port` → address. */
  readonly #dialing = new Map<string, string>();
  /** Per address: when a refusal was last logged, and how many were not logged since. */
  readonly #refusals = new Map<string, { at: number; unlogged: number }>();
  readonly #labels = new Map<string, string>();
  readonly #buffers = new Map<number, Uint8Array>();
  /** Who sent blocks of each piece in progress: peer id (hex) → label. */
  readonly #sources = new Map<number, Map<string, string>>();
  /** Peer ids that sent bad data: never talked to again. */
  readonly #banned = new Set<string>();
  readonly #serveScheduled = new Set<string>();
  readonly #draining = new Set<string>();
  readonly #snubbedUntil = new Map<string, number>();
  readonly #stats = new Map<string, PeerStats>();
  readonly #closedTotals = new Map<string, { downloaded: number; uploaded: number }>();
  #timer?: ReturnType<typeof setInterval>;
  #idleTimer?: ReturnType<typeof setInterval>;
  #flushTimer?: ReturnType<typeof setTimeout>;
  /** Since when some peer has been interested in our pieces (ms, performance.now()). */
  #interestedSince?: number;
  #interestedMs = 0;
  #upLimit?: RateLimiter;
  #downLimit?: RateLimiter;
  readonly #highWater: number;
  #lastRechoke = 0;
  #stopped = false;
  #resolveComplete!: () => void;
  /** Bytes of verified pieces downloaded since start. */
  downloaded = 0;
  /** Bytes of blocks uploaded since start. */
  uploaded = 0;
  /** Bytes received that were thrown away (unsolicited, duplicate, or in a failed piece). */
  wasted = 0;
  /** Resolves when every piece is held. */
  readonly completed: Promise<void>;

  /** Makes an engine; nothing happens until {@linkcode Engine.start}. */
  constructor(options: EngineOptions) {
    this.#o = options;
    this.#t = { ...DEFAULT_TUNING, ...options.tuning };
    this.#picker = new PiecePicker(options.meta, options.have);
    this.#picker.randomFirst = this.#t.randomFirst;
    this.#choker = new Choker({
      slots: this.#t.uploadSlots,
      optimisticEvery: this.#t.optimisticEvery,
    });
    if (options.upRate) this.#upLimit = new RateLimiter(options.upRate);
    if (options.downRate) this.#downLimit = new RateLimiter(options.downRate);
    // Under a cap, keep only a few blocks queued per peer: requests wait in the peer's queue
    // until the budget allows, where a cancel or a choke can still take them back.
    this.#highWater = options.upRate ? 64 * 1024 : 1 << 20;
    this.completed = new Promise((resolve) => (this.#resolveComplete = resolve));
    if (options.have.complete) this.#resolveComplete();
  }

  /** Pieces held. */
  get have(): Bitfield {
    return this.#o.have;
  }

  /** Open, handshaken connections. */
  get peerCount(): number {
    let n = 0;
    for (const p of this.#peers.values()) if (p.ready) n++;
    return n;
  }

  /** Counters for every remote peer we have exchanged with, keyed by peer id. */
  peerStats(): PeerStats[] {
    for (const p of this.#peers.values()) this.#updateStats(p);
    return [...this.#stats.values()];
  }

  /** Peers we are uploading to (unchoked and interested) and their queued requests. */
  serving(): { peers: number; queued: number } {
    let peers = 0;
    let queued = 0;
    for (const p of this.#peers.values()) {
      if (p.ready && !p.amChoking && p.peerInterested) peers++;
      queued += p.requests.length;
    }
    return { peers, queued };
  }

  /** Download and upload rates over the last few seconds, bytes/s. */
  rates(): { down: number; up: number } {
    let down = 0;
    let up = 0;
    const now = Date.now();
    for (const p of this.#peers.values()) {
      down += p.down.rate(now, p.connectedAt);
      up += p.up.rate(now, p.connectedAt);
    }
    return { down, up };
  }

  /**
   * Milliseconds during which at least one connected peer was interested in our pieces: the time
   * we had something to upload, against which upload utilisation is measured.
   */
  get interestedMs(): number {
    const open = this.#interestedSince === undefined
      ? 0
      : performance.now() - this.#interestedSince;
    return this.#interestedMs + open;
  }

  /** Starts accepting peers and the periodic housekeeping. */
  start(): void {
    this.#acceptLoop();
    this.#timer = setInterval(() => this.#tick(), 1000);
    this.#idleTimer = setInterval(() => this.#keepUplinkBusy(), IDLE_CHECK_MS);
  }

  /** Names a peer id for logs (the tracker's `host:port`). */
  namePeer(peerIdHex: string, label: string): void {
    if (this.#labels.get(peerIdHex) === label) return;
    this.#labels.set(peerIdHex, label);
    for (const p of this.#peers.values()) {
      if (p.peerIdHex !== peerIdHex) continue;
      const client = clientName(p.peerId);
      p.label = client === "swarm" ? label : `${label} (${client})`;
    }
  }

  /** True when a connection to this peer id or address is open or being made. */
  isConnected(peerIdHex: string, address: string, port: number): boolean {
    if (this.#dialing.has(`${address}:${port}`)) return true;
    for (const p of this.#peers.values()) {
      if (p.peerIdHex === peerIdHex && !p.closed) return true;
      if (p.outbound && p.remoteAddress === address && p.remotePort === port) return true;
    }
    return false;
  }

  /** Dials a peer unless already connected; failures are logged, not thrown. */
  async connect(address: string, port: number, label: string, peerIdHex = ""): Promise<void> {
    if (this.#stopped || this.isConnected(peerIdHex, address, port)) return;
    if (this.#banned.has(peerIdHex)) return;
    // Dials in flight count too: a peer list arrives all at once and every dial is async.
    const total = this.#peers.size + this.#dialing.size;
    if (refuseConnection(this.#t, address, { total, sameIp: this.#countIp(address) })) return;
    const addrKey = `${address}:${port}`;
    this.#dialing.set(addrKey, address);
    try {
      const conn = await Deno.connect({ hostname: address, port });
      if (this.#stopped) {
        conn.close();
        return;
      }
      this.#adopt(conn, true, label);
    } catch (e) {
      this.#o.log(`cannot connect to ${label}: ${e instanceof Error ? e.message : e}`);
    } finally {
      this.#dialing.delete(addrKey);
    }
  }

  /** Closes every connection and the listener. The file stays as it is. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    clearInterval(this.#idleTimer);
    clearTimeout(this.#flushTimer);
    this.#noteInterest(true);
    try {
      this.#o.listener.close();
    } catch {
      // Already closed.
    }
    for (const p of this.#peers.values()) p.close();
    this.#upLimit?.close();
    this.#downLimit?.close();
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const conn of this.#o.listener) {
        // Sockets still in their handshake have a small quota of their own; when it is full the
        // oldest gives way. Honest handshakes take milliseconds, so a client holding silent
        // connections can neither fill the table nor keep new peers out.
        const pending = [...this.#peers.values()].filter((p) => !p.ready);
        const address = (conn.remoteAddr as Deno.NetAddr).hostname;
        const why = refuseConnection(this.#t, address, {
          total: this.#peers.size - pending.length,
          sameIp: this.#countIp(address),
        });
        if (why) {
          conn.close();
          this.#logRefusal(address, why);
          continue;
        }
        if (pending.length >= MAX_PENDING_HANDSHAKES) pending[0].close("no handshake in time");
        this.#adopt(conn, false);
      }
    } catch (e) {
      if (!this.#stopped) this.#o.log(`listener failed: ${e instanceof Error ? e.message : e}`);
    }
  }

  /** Connections open, in their handshake or being dialled with `address`'s IP. */
  #countIp(address: string): number {
    const key = ipKey(address);
    let n = 0;
    for (const p of this.#peers.values()) if (!p.closed && ipKey(p.remoteAddress) === key) n++;
    for (const a of this.#dialing.values()) if (ipKey(a) === key) n++;
    return n;
  }

  /**
   * Logs a refused connection; further refusals of the same address within
   * {@linkcode REFUSAL_LOG_MS} are only counted (and the count logged by the tick), so a client
   * hammering the port cannot flood the log.
   */
  #logRefusal(address: string, why: string): void {
    const key = ipKey(address);
    const last = this.#refusals.get(key);
    if (last) {
      last.unlogged++;
      return;
    }
    this.#refusals.set(key, { at: Date.now(), unlogged: 0 });
    this.#o.log(`refused a connection from ${key}: ${why}`);
  }

  #flushRefusals(now: number): void {
    for (const [key, r] of this.#refusals) {
      if (now - r.at < REFUSAL_LOG_MS) continue;
      this.#refusals.delete(key);
      if (r.unlogged > 0) {
        this.#o.log(`refused ${r.unlogged} more connection(s) from ${key} for the same reason`);
      }
    }
  }

  #adopt(conn: Deno.Conn, outbound: boolean, label?: string): void {
    try {
      (conn as Deno.TcpConn).setNoDelay(true);
    } catch {
      // Not a TCP socket; nothing to tune.
    }
    const peer = new PeerConnection(conn, {
      infoHash: this.#o.meta.infoHash,
      peerId: this.#o.peerId,
      outbound,
      pieceCount: this.#o.meta.pieceCount,
      upLimit: this.#upLimit,
      downLimit: this.#downLimit,
    });
    if (label) peer.label = label;
    this.#peers.set(peer.key, peer);
    peer.start({
      onReady: (p) => this.#onReady(p),
      onMessage: (p, m) => this.#onMessage(p, m),
      onClose: (p, why) => this.#onClose(p, why),
    });
  }

  #onReady(peer: PeerConnection): void {
    if (this.#banned.has(peer.peerIdHex)) {
      peer.close("banned");
      return;
    }
    let ready = 0;
    for (const other of this.#peers.values()) {
      if (other === peer || !other.ready) continue;
      if (other.peerIdHex === peer.peerIdHex) {
        peer.close("duplicate connection");
        return;
      }
      ready++;
    }
    // Connections accepted while the table had room can finish their handshakes together.
    if (ready >= this.#t.maxPeers) {
      peer.close(
        `already ${ready} peers connected, the most allowed (--max-peers ${this.#t.maxPeers})`,
      );
      return;
    }
    const label = this.#labels.get(peer.peerIdHex);
    if (label) peer.label = label;
    const client = clientName(peer.peerId);
    if (client !== "swarm") peer.label += ` (${client})`;
    if (this.#o.have.count > 0) peer.send({ type: "bitfield", bitfield: this.#o.have.toBytes() });
  }

  #onClose(peer: PeerConnection, why?: string): void {
    this.#peers.delete(peer.key);
    if (!peer.ready && !peer.peerIdHex) {
      if (why && !this.#stopped) this.#o.log(`connection to ${peer.label} failed: ${why}`);
      return;
    }
    const base = this.#closedTotals.get(peer.peerIdHex) ?? { downloaded: 0, uploaded: 0 };
    base.downloaded += peer.down.total;
    base.uploaded += peer.up.total;
    this.#closedTotals.set(peer.peerIdHex, base);
    this.#updateStats(peer);
    this.#picker.peerLeft(peer.bitfield);
    this.#picker.release(peer.key);
    if (peer.peerInterested) this.#noteInterest();
    if (!peer.amChoking) this.#fillSlots();
    if (why && !this.#stopped && why !== "duplicate connection" && why !== "banned") {
      this.#o.log(`disconnected from ${peer.label}: ${why}`);
    }
    this.#fillAll();
  }

  #onMessage(peer: PeerConnection, m: Message): void {
    switch (m.type) {
      case "bitfield": {
        let bits: Bitfield;
        try {
          bits = Bitfield.fromBytes(m.bitfield, this.#o.meta.pieceCount);
        } catch (e) {
          peer.close(`protocol error: ${e instanceof BitfieldError ? e.message : e}`);
          return;
        }
        // BEP 3 wants it first, but some clients (aria2) resend it later: take the newest.
        this.#picker.peerLeft(peer.bitfield);
        peer.bitfield = bits;
        this.#picker.peerJoined(peer.bitfield);
        this.#afterAvailability(peer);
        break;
      }
      case "have": {
        if (m.index >= this.#o.meta.pieceCount) {
          peer.close(`protocol error: have for piece ${m.index}, which does not exist`);
          return;
        }
        if (peer.bitfield.set(m.index)) this.#picker.peerHas(m.index);
        this.#afterAvailability(peer);
        break;
      }
      case "choke":
        peer.peerChoking = true;
        this.#picker.release(peer.key);
        this.#fillAll();
        break;
      case "unchoke":
        this.#fill(peer);
        break;
      case "interested":
        this.#noteInterest();
        this.#maybeUnchoke(peer);
        break;
      case "not interested":
        this.#noteInterest();
        if (!peer.amChoking) {
          peer.send({ type: "choke" });
          peer.requests.length = 0;
          this.#fillSlots();
        }
        break;
      case "request":
        this.#onRequest(peer, m);
        break;
      case "cancel": {
        const i = peer.requests.findIndex((r) =>
          r.index === m.index && r.begin === m.begin && r.length === m.length
        );
        if (i >= 0) peer.requests.splice(i, 1);
        break;
      }
      case "piece":
        this.#onBlock(peer, m.index, m.begin, m.block);
        break;
      default:
        // keep-alive, port (DHT) and extension messages need no answer here.
        break;
    }
  }

  #onRequest(peer: PeerConnection, r: { index: number; begin: number; length: number }): void {
    if (r.length > MAX_REQUEST_LENGTH) {
      peer.close(`protocol error: asked for a ${r.length}-byte block`);
      return;
    }
    const size = r.index < this.#o.meta.pieceCount ? pieceSize(this.#o.meta, r.index) : 0;
    if (r.index >= this.#o.meta.pieceCount || r.begin + r.length > size || r.length === 0) {
      peer.close(`protocol error: request outside piece ${r.index}`);
      return;
    }
    // Refused quietly, as BEP 3 clients do: choked, not held, or bigger than we serve.
    if (peer.amChoking || !this.#o.have.has(r.index) || r.length > this.#t.maxBlockLength) return;
    if (peer.requests.length >= this.#t.maxQueuedRequests) {
      peer.close(`flooded us with over ${this.#t.maxQueuedRequests} requests`);
      return;
    }
    peer.requests.push({ index: r.index, begin: r.begin, length: r.length });
    this.#scheduleServe(peer);
  }

  #onBlock(peer: PeerConnection, index: number, begin: number, block: Uint8Array): void {
    const res = this.#picker.received(peer.key, index, begin, block.length);
    if (!res.accepted) {
      this.wasted += block.length;
      this.#fill(peer);
      return;
    }
    let buf = this.#buffers.get(index);
    if (!buf) {
      buf = this.#o.store.pool.acquire(pieceSize(this.#o.meta, index));
      this.#buffers.set(index, buf);
    }
    buf.set(block, begin);
    let sources = this.#sources.get(index);
    if (!sources) this.#sources.set(index, sources = new Map());
    sources.set(peer.peerIdHex, peer.label);
    for (const key of res.cancel) {
      this.#peers.get(key)?.send({ type: "cancel", index, begin, length: block.length });
    }
    if (res.pieceComplete) this.#finishPiece(index, buf);
    this.#fill(peer);
  }

  #finishPiece(index: number, data: Uint8Array): void {
    const sources = this.#sources.get(index) ?? new Map<string, string>();
    const from = [...sources.keys()].map((id) => this.#labelOf(id));
    this.#buffers.delete(index);
    this.#sources.delete(index);
    let ok: boolean;
    try {
      ok = this.#o.store.verifyAndWrite(index, data);
    } catch (e) {
      this.#o.onFatal?.(e as Error);
      return;
    }
    if (this.#stopped) return;
    if (!ok) {
      this.#o.store.pool.release(data);
      this.wasted += data.length;
      this.#o.log(
        `piece ${index} failed its SHA-1 check (from ${from.join(", ")}); fetching again`,
      );
      if (sources.size === 1) {
        // One sender and a wrong hash: that peer sent bad data, beyond doubt.
        const [peerIdHex] = sources.keys();
        this.#ban(peerIdHex, `sent piece ${index}, which failed its SHA-1 check`);
        this.#picker.pieceFailed(index);
      } else {
        // Several senders: fetch it again from a single peer, so a liar is caught alone and an
        // honest peer is never banned for someone else's bytes.
        this.#picker.pieceFailed(index, true);
      }
      this.#fillAll();
      return;
    }
    this.#picker.pieceVerified(index);
    this.downloaded += data.length;
    // A peer that has the piece gains nothing from hearing we have it too (libtorrent's "have
    // suppression"); the others hear it within HAVE_DELAY_MS, in a write shared with whatever
    // else goes their way.
    for (const p of this.#peers.values()) {
      if (p.ready && !p.bitfield.has(index)) p.sendLazy({ type: "have", index });
    }
    this.#scheduleFlush();
    this.#o.onPiece?.(index, from);
    if (this.#o.have.complete) {
      this.#resolveComplete();
      for (const p of this.#peers.values()) {
        if (!p.ready) continue;
        if (p.amInterested) p.send({ type: "not interested" });
        // Two seeders have nothing to say to each other.
        if (p.bitfield.complete) p.close();
      }
    } else {
      for (const p of this.#peers.values()) this.#updateInterest(p);
    }
  }

  #labelOf(peerIdHex: string): string {
    for (const p of this.#peers.values()) if (p.peerIdHex === peerIdHex) return p.label;
    return this.#labels.get(peerIdHex) ?? peerIdHex.slice(0, 16);
  }

  /** Peer ids banned for sending data that failed its hash. */
  get banned(): string[] {
    return [...this.#banned];
  }

  #ban(peerIdHex: string, why: string): void {
    if (this.#banned.has(peerIdHex)) return;
    this.#banned.add(peerIdHex);
    this.#o.log(`banned ${this.#labelOf(peerIdHex)}: ${why}`);
    for (const p of this.#peers.values()) if (p.peerIdHex === peerIdHex) p.close(`banned: ${why}`);
  }

  #afterAvailability(peer: PeerConnection): void {
    if (this.#o.have.complete && peer.bitfield.complete) {
      peer.close();
      return;
    }
    this.#updateInterest(peer);
    this.#fill(peer);
  }

  #updateInterest(peer: PeerConnection): void {
    if (!peer.ready) return;
    const want = this.#picker.interesting(peer.bitfield);
    if (want && !peer.amInterested) peer.send({ type: "interested" });
    else if (!want && peer.amInterested) peer.send({ type: "not interested" });
  }

  #fill(peer: PeerConnection): void {
    if (!peer.ready || peer.peerChoking || !peer.amInterested) return;
    if ((this.#snubbedUntil.get(peer.key) ?? 0) > Date.now()) return;
    // Keep about half a second of this peer's delivery rate requested: enough to keep the pipe
    // full, not so much that a slow (rate-capped) peer sits on pieces others could send sooner.
    const rate = peer.down.rate(Date.now(), peer.connectedAt);
    const depth = Math.min(
      this.#t.pipeline,
      Math.max(MIN_PIPELINE, Math.ceil((rate * PIPELINE_SECONDS) / BLOCK_LENGTH)),
    );
    const want = depth - this.#picker.outstanding(peer.key);
    // Top up in batches so one arriving block does not cost one tiny write.
    if (want < Math.min(8, depth)) return;
    for (const r of this.#picker.request(peer.key, peer.bitfield, want)) {
      peer.send({ type: "request", ...r });
    }
  }

  #fillAll(): void {
    for (const p of this.#peers.values()) this.#fill(p);
  }

  #maybeUnchoke(peer: PeerConnection): void {
    if (!peer.amChoking || this.#o.noUpload) return;
    // A seeder spreads its upload over every peer that wants it: each gets different rare
    // pieces to pass on, instead of a few peers getting all of them.
    if (this.#o.have.complete) {
      peer.send({ type: "unchoke" });
      return;
    }
    let unchoked = 0;
    for (const p of this.#peers.values()) if (p.ready && !p.amChoking) unchoked++;
    // A free slot is filled at once; otherwise the peer waits for the next rechoke.
    if (unchoked < this.#t.uploadSlots + 1) peer.send({ type: "unchoke" });
  }

  /**
   * Gives slots freed between rechokes (a peer lost interest or left) to waiting interested
   * peers at once, the fastest first, so upload capacity does not idle until the next rechoke.
   */
  #fillSlots(): void {
    if (this.#o.noUpload || this.#stopped) return;
    const waiting = [...this.#peers.values()]
      .filter((p) => p.ready && p.amChoking && p.peerInterested)
      .sort((a, b) => b.down.rate() - a.down.rate());
    for (const p of waiting) this.#maybeUnchoke(p);
  }

  #rechoke(now: number): void {
    const seeding = this.#o.have.complete;
    const candidates = [...this.#peers.values()].filter((p) => p.ready).map((p) => ({
      key: p.key,
      interested: p.peerInterested,
      rate: seeding ? p.up.rate(now) : p.down.rate(now),
      connectedAt: p.connectedAt,
    }));
    const unchoke = this.#o.noUpload
      ? new Set<string>()
      : seeding
      ? new Set(candidates.filter((c) => c.interested).map((c) => c.key))
      : this.#choker.rechoke(candidates, now);
    for (const p of this.#peers.values()) {
      if (!p.ready) continue;
      if (unchoke.has(p.key) && p.amChoking) p.send({ type: "unchoke" });
      else if (!unchoke.has(p.key) && !p.amChoking) {
        p.send({ type: "choke" });
        p.requests.length = 0;
      }
    }
  }

  /**
   * Sends the blocks `peer` asked for, synchronously, until its send buffer reaches the high-water
   * mark; then resumes when it drains. Serving a whole batch at once lets the connection write
   * hundreds of KiB per system call instead of one block.
   */
  #serve(peer: PeerConnection): void {
    const high = this.#highWater;
    try {
      while (!peer.closed && !peer.amChoking && peer.requests.length > 0) {
        if (peer.queuedBytes >= high) {
          if (!this.#draining.has(peer.key)) {
            this.#draining.add(peer.key);
            peer.drained(high / 2).then(() => {
              this.#draining.delete(peer.key);
              this.#serve(peer);
            });
          }
          return;
        }
        const r = peer.requests.shift()!;
        this.#o.store.withBlock(r.index, r.begin, r.length, (block) => {
          peer.sendPiece(r.index, r.begin, block);
          this.uploaded += block.length;
        });
      }
    } catch (e) {
      this.#o.onFatal?.(e as Error);
    }
  }

  #scheduleServe(peer: PeerConnection): void {
    if (this.#serveScheduled.has(peer.key)) return;
    this.#serveScheduled.add(peer.key);
    // After the rest of this read's messages are parsed, so a batch of requests is served at once.
    queueMicrotask(() => {
      this.#serveScheduled.delete(peer.key);
      this.#serve(peer);
    });
  }

  #tick(): void {
    const now = Date.now();
    this.#flushRefusals(now);
    for (const p of this.#peers.values()) {
      if (!p.ready) continue;
      if (now - p.lastReceived > this.#t.idleTimeoutMs) {
        p.close(`silent for ${Math.round((now - p.lastReceived) / 1000)} s`);
        continue;
      }
      if (now - p.lastSent > this.#t.keepAliveMs) p.send({ type: "keep-alive" });
      const waiting = this.#picker.outstanding(p.key) > 0;
      if (waiting && now - p.lastBlock > this.#t.requestTimeoutMs && !p.peerChoking) {
        // It stopped sending (snubbed us): hand its blocks to others and leave it alone a while.
        // A leecher also stops uploading to it (anti-snubbing): its slot goes to a peer that
        // gives back; a seeder, which expects nothing back, keeps serving it.
        const choke = !p.amChoking && !this.#o.have.complete;
        this.#o.log(
          `${p.label} sent nothing for ${this.#t.requestTimeoutMs / 1000} s; asking others` +
            (choke ? " and choking it" : ""),
        );
        if (choke) {
          p.send({ type: "choke" });
          p.requests.length = 0;
        }
        this.#picker.release(p.key);
        this.#snubbedUntil.set(p.key, now + 2 * this.#t.requestTimeoutMs);
        p.lastBlock = now;
        this.#fillAll();
        if (choke) this.#fillSlots();
      }
    }
    if (now - this.#lastRechoke >= this.#t.rechokeMs) {
      this.#lastRechoke = now;
      this.#rechoke(now);
    }
  }

  #scheduleFlush(): void {
    if (this.#flushTimer !== undefined || this.#stopped) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      for (const p of this.#peers.values()) p.flush();
    }, HAVE_DELAY_MS);
  }

  /** Opens or closes the "someone wants our pieces" interval after interest changed. */
  #noteInterest(stopping = false): void {
    let any = false;
    if (!stopping) {
      for (const p of this.#peers.values()) {
        if (p.ready && p.peerInterested) {
          any = true;
          break;
        }
      }
    }
    const now = performance.now();
    if (any && this.#interestedSince === undefined) this.#interestedSince = now;
    else if (!any && this.#interestedSince !== undefined) {
      this.#interestedMs += now - this.#interestedSince;
      this.#interestedSince = undefined;
    }
  }

  /**
   * Unchokes one more interested peer when our uplink is about to run dry: see
   * {@linkcode pickIdleUnchoke}. At most twice the regular slots (plus the optimistic one) are
   * unchoked this way; the next rechoke goes back to the regular count.
   */
  #keepUplinkBusy(): void {
    if (this.#o.noUpload || this.#stopped || this.#o.have.complete) return;
    let queued = 0;
    for (const p of this.#peers.values()) {
      if (p.ready && !p.amChoking) queued += p.requests.length * BLOCK_LENGTH + p.queuedBytes;
    }
    const low = Math.max(4 * BLOCK_LENGTH, (this.#o.upRate ?? 0) * IDLE_QUEUE_SECONDS);
    if (queued >= low) return;
    const now = Date.now();
    const candidates = [...this.#peers.values()].filter((p) => p.ready).map((p) => ({
      key: p.key,
      interested: p.peerInterested,
      unchoked: !p.amChoking,
      rate: p.down.rate(now, p.connectedAt),
      connectedAt: p.connectedAt,
    }));
    const key = pickIdleUnchoke(candidates, 2 * this.#t.uploadSlots + 1);
    if (key !== undefined) this.#peers.get(key)?.send({ type: "unchoke" });
  }

  #updateStats(p: PeerConnection): void {
    if (!p.peerIdHex) return;
    const prev = this.#stats.get(p.peerIdHex);
    // Counters of earlier connections to the same peer were folded in when they closed.
    const base = this.#closedTotals.get(p.peerIdHex) ?? { downloaded: 0, uploaded: 0 };
    const downloaded = base.downloaded + (p.closed ? 0 : p.down.total);
    const uploaded = base.uploaded + (p.closed ? 0 : p.up.total);
    this.#stats.set(p.peerIdHex, {
      label: p.label,
      peerId: p.peerIdHex,
      downloaded,
      uploaded,
      pieces: p.bitfield.count,
      connected: !p.closed || (prev?.connected ?? false) && this.#hasOpen(p.peerIdHex),
    });
  }

  #hasOpen(peerIdHex: string): boolean {
    for (const q of this.#peers.values()) if (q.peerIdHex === peerIdHex && !q.closed) return true;
    return false;
  }
}
