/**
 * One TCP connection to a remote peer: the BEP 3 handshake, the read loop that feeds the
 * {@linkcode WireDecoder}, a coalescing write queue, and the four choke/interest flags with
 * per-connection byte counters. It knows nothing of pieces on disk: the engine decides.
 *
 * @example
 * ```ts
 * import { PeerConnection } from "./peer_connection.ts";
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 9000 });
 * const peer = new PeerConnection(conn, { infoHash, peerId, outbound: true, pieceCount: 500 });
 * peer.start({
 *   onReady: (p) => p.send({ type: "interested" }),
 *   onMessage: (p, m) => console.log(m.type),
 *   onClose: (p, why) => console.log("closed", why),
 * });
 * ```
 * @module
 */

import { Bitfield } from "./bitfield.ts";
import { bytesEqual, toHex } from "./hash.ts";
import { RateMeter } from "./rate.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import {
  encodeHandshake,
  encodeMessage,
  type Handshake,
  type Message,
  MessageId,
  WireDecoder,
  WireError,
} from "./wire.ts";

/** What the engine hears from a connection. */
export interface ConnectionHandlers {
  /** The handshake checked out; the connection may now carry messages. */
  onReady(peer: PeerConnection): void;
  /** A message arrived. Binary fields are valid only during the call. */
  onMessage(peer: PeerConnection, msg: Message): void;
  /** The connection closed; `reason` says why (undefined for a clean close by us). */
  onClose(peer: PeerConnection, reason?: string): void;
}

/** How to open a connection. */
export interface ConnectionOptions {
  /** The swarm's info-hash; a handshake naming another is refused. */
  infoHash: Uint8Array;
  /** Our peer id. */
  peerId: Uint8Array;
  /** True when we dialled; then we send our handshake first. */
  outbound: boolean;
  /** Pieces in the file, to size the remote bitfield. */
  pieceCount: number;
  /** Reserved handshake bytes to send (default zeros). */
  reserved?: Uint8Array;
  /** Give up when the handshake takes longer than this (ms, default 10 s). */
  handshakeTimeoutMs?: number;
  /** Largest message accepted (default: room for a 128 KiB block or the bitfield). */
  maxMessageLength?: number;
  /** The peer's upload budget, shared by all its connections (`--up-rate`). */
  upLimit?: RateLimiter;
  /** The peer's download budget, shared by all its connections (`--down-rate`). */
  downLimit?: RateLimiter;
}

const WRITE_BUFFER = 256 * 1024;
let nextSerial = 0;

/** One remote peer; see the module doc. */
export class PeerConnection {
  /** Unique key of this connection in the engine's tables. */
  readonly key: string;
  /** Remote address, as the socket reports it. */
  readonly remoteAddress: string;
  /** Remote port, as the socket reports it. */
  readonly remotePort: number;
  /** True when we dialled. */
  readonly outbound: boolean;
  /** When the connection was made (ms since epoch). */
  readonly connectedAt = Date.now();
  /** The remote peer id, once the handshake arrived. */
  peerId: Uint8Array = new Uint8Array(20);
  /** The remote peer id in hex. */
  peerIdHex = "";
  /** Pieces the remote peer holds. */
  bitfield: Bitfield;
  /** We refuse to upload to it. */
  amChoking = true;
  /** We want pieces it has. */
  amInterested = false;
  /** It refuses to upload to us. */
  peerChoking = true;
  /** It wants pieces we have. */
  peerInterested = false;
  /** Block payload bytes we received from it. */
  readonly down = new RateMeter();
  /** Block payload bytes we sent it. */
  readonly up = new RateMeter();
  /** Requests it sent that we have not served yet. */
  readonly requests: { index: number; begin: number; length: number }[] = [];
  /** Last time anything arrived (ms). */
  lastReceived = Date.now();
  /** Last time we sent anything (ms). */
  lastSent = Date.now();
  /** Last time a block arrived (ms), to spot a peer that stops sending (snubbing). */
  lastBlock = Date.now();
  /** A name for people: the tracker id once known, else address:port. */
  label: string;

  readonly #conn: Deno.Conn;
  readonly #opts: ConnectionOptions;
  readonly #decoder: WireDecoder;
  #handlers?: ConnectionHandlers;
  #ready = false;
  #closed = false;
  #fill = new Uint8Array(WRITE_BUFFER);
  #fillLen = 0;
  #spare = new Uint8Array(WRITE_BUFFER);
  #outBytes = 0;
  #writing = false;
  #drainWaiters: (() => void)[] = [];
  #handshakeTimer?: ReturnType<typeof setTimeout>;

  /** Wraps an open socket; nothing happens until {@linkcode PeerConnection.start}. */
  constructor(conn: Deno.Conn, opts: ConnectionOptions) {
    this.#conn = conn;
    this.#opts = opts;
    this.outbound = opts.outbound;
    const addr = conn.remoteAddr as Deno.NetAddr;
    this.remoteAddress = addr.hostname;
    this.remotePort = addr.port;
    this.key = `${addr.hostname}:${addr.port}#${nextSerial++}`;
    this.label = `${addr.hostname}:${addr.port}`;
    this.bitfield = new Bitfield(opts.pieceCount);
    const bitfieldMessage = Bitfield.byteLength(opts.pieceCount) + 1;
    this.#decoder = new WireDecoder({
      handshake: true,
      maxMessageLength: opts.maxMessageLength ?? Math.max(128 * 1024 + 9, bitfieldMessage),
    });
  }

  /** True once the handshake is done and until the connection closes. */
  get ready(): boolean {
    return this.#ready && !this.#closed;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes queued for sending and not yet written to the socket. */
  get queuedBytes(): number {
    return this.#outBytes;
  }

  /** Starts the handshake and the read loop. */
  start(handlers: ConnectionHandlers): void {
    this.#handlers = handlers;
    if (this.outbound) this.#sendHandshake();
    this.#handshakeTimer = setTimeout(
      () => this.close("no handshake in time"),
      this.#opts.handshakeTimeoutMs ?? 10_000,
    );
    this.#readLoop();
  }

  /** Queues a message. Choke and interest flags are updated to match what we send. */
  send(msg: Message): void {
    if (this.#closed) return;
    if (msg.type === "choke") this.amChoking = true;
    else if (msg.type === "unchoke") this.amChoking = false;
    else if (msg.type === "interested") this.amInterested = true;
    else if (msg.type === "not interested") this.amInterested = false;
    this.#queue(encodeMessage(msg));
  }

  /**
   * Queues a message without starting a write: it leaves with the next message sent on this
   * connection, or at {@linkcode PeerConnection.flush}. Each write wakes the receiving process,
   * which costs far more than the bytes; `have` messages can wait a moment to share a write.
   */
  sendLazy(msg: Message): void {
    if (this.#closed) return;
    const bytes = encodeMessage(msg);
    this.#reserve(bytes.length).set(bytes);
  }

  /** Writes whatever {@linkcode PeerConnection.sendLazy} queued. */
  flush(): void {
    if (!this.#closed && this.#fillLen > 0) this.#kick();
  }

  /** Queues a `piece` message carrying `block` (copied now), counting it as uploaded. */
  sendPiece(index: number, begin: number, block: Uint8Array): void {
    if (this.#closed) return;
    const out = this.#reserve(13 + block.length);
    const v = new DataView(out.buffer, out.byteOffset, 13);
    v.setUint32(0, 9 + block.length);
    out[4] = MessageId.piece;
    v.setUint32(5, index);
    v.setUint32(9, begin);
    out.set(block, 13);
    this.up.add(block.length);
    this.#kick();
  }

  /** Resolves once fewer than `bytes` are queued (or the connection closed). */
  drained(bytes = 0): Promise<void> {
    if (this.#outBytes <= bytes || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Closes the socket; `reason` is passed to onClose (a protocol error, a timeout, …). */
  close(reason?: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#handshakeTimer);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side.
    }
    for (const w of this.#drainWaiters.splice(0)) w();
    this.#handlers?.onClose(this, reason);
  }

  #sendHandshake(): void {
    this.#queue(encodeHandshake(this.#opts.infoHash, this.#opts.peerId, this.#opts.reserved));
  }

  async #readLoop(): Promise<void> {
    const emit = (m: Message | Handshake) => this.#dispatch(m);
    try {
      while (!this.#closed) {
        // Read straight into the decoder's buffer: no copy, no allocation per read.
        let space = this.#decoder.writable();
        let granted = 0;
        if (this.#opts.downLimit) {
          granted = await this.#opts.downLimit.acquire(space.length);
          space = space.subarray(0, granted);
          if (this.#closed) return;
        }
        const n = await this.#conn.read(space);
        if (granted > 0) this.#opts.downLimit!.giveBack(granted - (n ?? 0));
        if (n === null) {
          this.close("connection closed by peer");
          return;
        }
        this.lastReceived = Date.now();
        this.#decoder.commit(n, emit);
      }
    } catch (e) {
      if (this.#closed) return;
      this.close(e instanceof WireError ? `protocol error: ${e.message}` : describe(e));
    }
  }

  #dispatch(m: Message | Handshake): void {
    if (this.#closed) return;
    if (m.type === "handshake") {
      if (!bytesEqual(m.infoHash, this.#opts.infoHash)) {
        throw new WireError("handshake names another info-hash");
      }
      if (bytesEqual(m.peerId, this.#opts.peerId)) throw new WireError("connected to ourselves");
      this.peerId = m.peerId;
      this.peerIdHex = toHex(m.peerId);
      if (!this.outbound) this.#sendHandshake();
      clearTimeout(this.#handshakeTimer);
      this.#ready = true;
      this.#handlers!.onReady(this);
      return;
    }
    switch (m.type) {
      case "choke":
        this.peerChoking = true;
        break;
      case "unchoke":
        this.peerChoking = false;
        break;
      case "interested":
        this.peerInterested = true;
        break;
      case "not interested":
        this.peerInterested = false;
        break;
      case "piece":
        this.down.add(m.block.length);
        this.lastBlock = Date.now();
        break;
    }
    this.#handlers!.onMessage(this, m);
  }

  #queue(bytes: Uint8Array): void {
    this.#reserve(bytes.length).set(bytes);
    this.#kick();
  }

  /** Room for `n` more bytes at the end of the staging buffer. */
  #reserve(n: number): Uint8Array {
    if (this.#fillLen + n > this.#fill.length) {
      const bigger = new Uint8Array(Math.max(2 * this.#fill.length, this.#fillLen + n));
      bigger.set(this.#fill.subarray(0, this.#fillLen));
      this.#fill = bigger;
    }
    const view = this.#fill.subarray(this.#fillLen, this.#fillLen + n);
    this.#fillLen += n;
    this.#outBytes += n;
    return view;
  }

  #kick(): void {
    if (!this.#writing) this.#writeLoop();
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#fillLen > 0 && !this.#closed) {
        // Double buffering: messages keep landing in one buffer while the other is written.
        const data = this.#fill.subarray(0, this.#fillLen);
        const len = this.#fillLen;
        [this.#fill, this.#spare] = [this.#spare, this.#fill];
        this.#fillLen = 0;
        if (this.#fill.length < this.#spare.length) this.#fill = new Uint8Array(this.#spare.length);
        let off = 0;
        const limit = this.#opts.upLimit;
        while (off < len) {
          if (limit) {
            const granted = await limit.acquire(len - off);
            if (this.#closed) return;
            const n = await this.#conn.write(data.subarray(off, off + granted));
            limit.giveBack(granted - n);
            off += n;
          } else {
            off += await this.#conn.write(data.subarray(off));
          }
        }
        this.#outBytes -= len;
        this.lastSent = Date.now();
        if (this.#drainWaiters.length > 0) {
          for (const w of this.#drainWaiters.splice(0)) w();
        }
      }
    } catch (e) {
      this.close(describe(e));
    } finally {
      this.#writing = false;
    }
  }
}

function describe(e: unknown): string {
  if (e instanceof Deno.errors.ConnectionReset) return "connection reset by peer";
  if (e instanceof Deno.errors.BrokenPipe) return "connection closed by peer";
  return e instanceof Error ? e.message : String(e);
}
