/**
 * The BitTorrent peer wire protocol (BEP 3) as a codec, apart from any socket: encoders that turn
 * messages into bytes, and a streaming {@linkcode WireDecoder} that turns received bytes back into
 * messages, bounding every length before it allocates anything.
 *
 * @example
 * ```ts
 * import { encodeMessage, WireDecoder } from "./wire.ts";
 * const dec = new WireDecoder({ handshake: false });
 * const msgs = [];
 * dec.push(encodeMessage({ type: "have", index: 7 }), (m) => msgs.push(m));
 * msgs; // [{ type: "have", index: 7 }]
 * ```
 * @module
 */

/** The protocol string every BEP 3 handshake starts with. */
export const PROTOCOL = "BitTorrent protocol";
/** Bytes in a handshake: 1 + 19 + 8 reserved + 20 info-hash + 20 peer id. */
export const HANDSHAKE_LENGTH = 68;
/** The block size every client requests: 16 KiB. */
export const BLOCK_LENGTH = 16 * 1024;
/** Largest block a peer may ask for before its connection is dropped (BEP 3 practice). */
export const MAX_REQUEST_LENGTH = 128 * 1024;

/** The numeric ids of BEP 3 messages. */
export const MessageId = {
  choke: 0,
  unchoke: 1,
  interested: 2,
  "not interested": 3,
  have: 4,
  bitfield: 5,
  request: 6,
  piece: 7,
  cancel: 8,
  port: 9,
} as const;

/** The handshake that opens every connection. */
export interface Handshake {
  /** Discriminant. */
  type: "handshake";
  /** The 8 reserved bytes (extension flags). */
  reserved: Uint8Array;
  /** The swarm's 20-byte info-hash. */
  infoHash: Uint8Array;
  /** The sender's 20-byte peer id. */
  peerId: Uint8Array;
}

/** A peer wire message after the handshake, named as in BEP 3. */
export type Message =
  | { type: "keep-alive" }
  | { type: "choke" }
  | { type: "unchoke" }
  | { type: "interested" }
  | { type: "not interested" }
  | { type: "have"; index: number }
  | { type: "bitfield"; bitfield: Uint8Array }
  | { type: "request"; index: number; begin: number; length: number }
  | { type: "piece"; index: number; begin: number; block: Uint8Array }
  | { type: "cancel"; index: number; begin: number; length: number }
  | { type: "port"; port: number }
  | { type: "unknown"; id: number; payload: Uint8Array };

/** Raised when a peer sends bytes that break the protocol; the connection should be dropped. */
export class WireError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WireError";
  }
}

const protocolBytes = new TextEncoder().encode(PROTOCOL);

/** Encodes a handshake. */
export function encodeHandshake(
  infoHash: Uint8Array,
  peerId: Uint8Array,
  reserved: Uint8Array = new Uint8Array(8),
): Uint8Array {
  if (infoHash.length !== 20 || peerId.length !== 20 || reserved.length !== 8) {
    throw new RangeError("handshake needs a 20-byte info-hash, 20-byte peer id, 8 reserved bytes");
  }
  const out = new Uint8Array(HANDSHAKE_LENGTH);
  out[0] = 19;
  out.set(protocolBytes, 1);
  out.set(reserved, 20);
  out.set(infoHash, 28);
  out.set(peerId, 48);
  return out;
}

/** Encodes one message, with its 4-byte length prefix. */
export function encodeMessage(msg: Message): Uint8Array {
  switch (msg.type) {
    case "keep-alive":
      return new Uint8Array(4);
    case "choke":
    case "unchoke":
    case "interested":
    case "not interested":
      return frame(MessageId[msg.type], 0);
    case "have": {
      const out = frame(MessageId.have, 4);
      view(out).setUint32(5, msg.index);
      return out;
    }
    case "bitfield": {
      const out = frame(MessageId.bitfield, msg.bitfield.length);
      out.set(msg.bitfield, 5);
      return out;
    }
    case "request":
    case "cancel": {
      const out = frame(MessageId[msg.type], 12);
      const v = view(out);
      v.setUint32(5, msg.index);
      v.setUint32(9, msg.begin);
      v.setUint32(13, msg.length);
      return out;
    }
    case "piece": {
      const out = frame(MessageId.piece, 8 + msg.block.length);
      const v = view(out);
      v.setUint32(5, msg.index);
      v.setUint32(9, msg.begin);
      out.set(msg.block, 13);
      return out;
    }
    case "port": {
      const out = frame(MessageId.port, 2);
      view(out).setUint16(5, msg.port);
      return out;
    }
    case "unknown": {
      const out = frame(msg.id, msg.payload.length);
      out.set(msg.payload, 5);
      return out;
    }
  }
}

function frame(id: number, payloadLength: number): Uint8Array {
  const out = new Uint8Array(5 + payloadLength);
  view(out).setUint32(0, 1 + payloadLength);
  out[4] = id;
  return out;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Options for {@linkcode WireDecoder}. */
export interface WireDecoderOptions {
  /** Expect a handshake before any message (default true). */
  handshake?: boolean;
  /** Largest message accepted, length prefix excluded (default 128 KiB + 9). */
  maxMessageLength?: number;
}

/**
 * Turns a byte stream into handshake and messages. Messages are handed to the callback as they
 * complete; a `piece` block or `bitfield` points into the decoder's buffer and is valid only
 * during the callback, so copy what you keep. Throws {@linkcode WireError} on malformed input.
 *
 * A socket can read straight into {@linkcode WireDecoder.writable} and then
 * {@linkcode WireDecoder.commit}, so no bytes are copied or allocated per read.
 */
export class WireDecoder {
  #expectHandshake: boolean;
  readonly #max: number;
  #buf: Uint8Array;
  #view: DataView;
  #start = 0;
  #end = 0;

  /** Makes a decoder. */
  constructor(options: WireDecoderOptions = {}) {
    this.#expectHandshake = options.handshake ?? true;
    this.#max = options.maxMessageLength ?? MAX_REQUEST_LENGTH + 9;
    // Room for one whole largest message plus a generous read.
    this.#buf = new Uint8Array(Math.max(256 * 1024, 2 * (this.#max + 4)));
    this.#view = view(this.#buf);
  }

  /** Bytes held back waiting for the rest of a message. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Free space to read the next bytes into; pass the count read to {@linkcode commit}. */
  writable(): Uint8Array {
    if (this.#buf.length - this.#end < this.#buf.length / 4) {
      // Move the incomplete tail (at most one message) to the front.
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    return this.#buf.subarray(this.#end);
  }

  /** Takes `n` bytes just read into {@linkcode writable} and emits what they complete. */
  commit(n: number, emit: (m: Message | Handshake) => void): void {
    this.#end += n;
    this.#parse(emit);
  }

  /** Feeds received bytes (copied in); calls `emit` for every complete message. */
  push(chunk: Uint8Array, emit: (m: Message | Handshake) => void): void {
    let off = 0;
    while (off < chunk.length) {
      const space = this.writable();
      const n = Math.min(space.length, chunk.length - off);
      space.set(chunk.subarray(off, off + n));
      off += n;
      this.commit(n, emit);
    }
  }

  #parse(emit: (m: Message | Handshake) => void): void {
    const buf = this.#buf;
    const dv = this.#view;
    let off = this.#start;
    const end = this.#end;
    try {
      for (;;) {
        if (this.#expectHandshake) {
          if (end - off >= 1 && buf[off] !== 19) {
            throw new WireError(`handshake protocol length ${buf[off]}, expected 19`);
          }
          if (end - off < HANDSHAKE_LENGTH) break;
          for (let i = 0; i < 19; i++) {
            if (buf[off + 1 + i] !== protocolBytes[i]) {
              throw new WireError("handshake does not name the BitTorrent protocol");
            }
          }
          this.#expectHandshake = false;
          const hs: Handshake = {
            type: "handshake",
            reserved: buf.slice(off + 20, off + 28),
            infoHash: buf.slice(off + 28, off + 48),
            peerId: buf.slice(off + 48, off + 68),
          };
          off += HANDSHAKE_LENGTH;
          this.#start = off;
          emit(hs);
          continue;
        }
        if (end - off < 4) break;
        const len = dv.getUint32(off);
        if (len > this.#max) {
          throw new WireError(`message of ${len} bytes exceeds the ${this.#max}-byte limit`);
        }
        if (end - off < 4 + len) break;
        const body = buf.subarray(off + 4, off + 4 + len);
        off += 4 + len;
        this.#start = off;
        emit(decodeBody(body));
      }
    } finally {
      this.#start = off;
      if (this.#start === this.#end) this.#start = this.#end = 0;
    }
  }
}

/** Decodes one message body (after the length prefix). */
export function decodeBody(body: Uint8Array): Message {
  if (body.length === 0) return { type: "keep-alive" };
  const id = body[0];
  const n = body.length - 1;
  const dv = view(body);
  const need = (len: number, name: string) => {
    if (n !== len) throw new WireError(`${name} message has ${n} payload bytes, expected ${len}`);
  };
  switch (id) {
    case 0:
      need(0, "choke");
      return { type: "choke" };
    case 1:
      need(0, "unchoke");
      return { type: "unchoke" };
    case 2:
      need(0, "interested");
      return { type: "interested" };
    case 3:
      need(0, "not interested");
      return { type: "not interested" };
    case 4:
      need(4, "have");
      return { type: "have", index: dv.getUint32(1) };
    case 5:
      return { type: "bitfield", bitfield: body.subarray(1) };
    case 6:
    case 8:
      need(12, id === 6 ? "request" : "cancel");
      return {
        type: id === 6 ? "request" : "cancel",
        index: dv.getUint32(1),
        begin: dv.getUint32(5),
        length: dv.getUint32(9),
      };
    case 7:
      if (n < 8) throw new WireError(`piece message has only ${n} payload bytes`);
      return {
        type: "piece",
        index: dv.getUint32(1),
        begin: dv.getUint32(5),
        block: body.subarray(9),
      };
    case 9:
      need(2, "port");
      return { type: "port", port: dv.getUint16(1) };
    default:
      return { type: "unknown", id, payload: body.subarray(1) };
  }
}

/**
 * A peer id in the Azureus style real clients use: `-SW0001-` then 12 random characters.
 */
export function makePeerId(): Uint8Array {
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const rand = crypto.getRandomValues(new Uint8Array(12));
  let s = "-SW0001-";
  for (const r of rand) s += alphabet[r % alphabet.length];
  return new TextEncoder().encode(s);
}

/** A name for the client behind an Azureus-style peer id (`-lt2080-…`), for the dashboard. */
export function clientName(peerId: Uint8Array): string {
  const id = new TextDecoder("latin1").decode(peerId.subarray(0, 8));
  const known: Record<string, string> = {
    lt: "libtorrent",
    LT: "libtorrent",
    TR: "Transmission",
    qB: "qBittorrent",
    DE: "Deluge",
    UT: "µTorrent",
    SW: "swarm",
    AZ: "Vuze",
    WW: "WebTorrent",
  };
  const m = /^-([A-Za-z~]{2})([0-9A-Za-z]{4})-$/.exec(id);
  if (m) return known[m[1]] ?? m[1];
  if (id.startsWith("A2-")) return "aria2";
  if (/^M\d/.test(id)) return "mainline";
  return "BitTorrent";
}
