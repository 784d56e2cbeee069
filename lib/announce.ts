/**
 * The HTTP tracker protocol of real BitTorrent clients: parsing `/announce` (BEP 3) and
 * `/scrape` (BEP 48) query strings, whose `info_hash` and `peer_id` are raw bytes
 * percent-encoded, and bencoding the answers, with compact peer lists (BEP 23) or the
 * dictionary form. Pure functions, no I/O.
 *
 * @example
 * ```ts
 * import { encodeAnnounceResponse, parseAnnounce } from "./announce.ts";
 * const a = parseAnnounce("info_hash=%12%34...&peer_id=-lt2080-...&port=6881&left=0&compact=1");
 * const body = encodeAnnounceResponse({ interval: 60, complete: 1, incomplete: 0, peers: [] }, a.compact);
 * ```
 * @module
 */

import { type BDict, concat, encode } from "./bencode.ts";

/** Longest query string accepted (bytes); real announces are a few hundred. */
export const MAX_QUERY_LENGTH = 4096;
/** Most peers returned by one announce, whatever `numwant` asks. */
export const MAX_NUMWANT = 200;

/** Raised for a malformed announce or scrape; its message becomes the `failure reason`. */
export class AnnounceError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AnnounceError";
  }
}

/** An announce's `event`. */
export type AnnounceEvent = "started" | "completed" | "stopped" | "empty";

/** A parsed announce request. */
export interface AnnounceParams {
  /** The swarm's 20-byte info-hash. */
  infoHash: Uint8Array;
  /** The client's 20-byte peer id. */
  peerId: Uint8Array;
  /** The port it accepts peers on. */
  port: number;
  /** Bytes uploaded so far. */
  uploaded: number;
  /** Bytes downloaded so far. */
  downloaded: number;
  /** Bytes still missing. */
  left: number;
  /** started, completed, stopped, or empty (a regular announce). */
  event: AnnounceEvent;
  /** How many peers it wants (capped at {@linkcode MAX_NUMWANT}; default 50). */
  numwant: number;
  /** Wants the compact peer list (BEP 23); default true, as most trackers do. */
  compact: boolean;
  /** Does not want peer ids in the dictionary form. */
  noPeerId: boolean;
}

/** A peer in an announce answer. */
export interface AnnouncePeer {
  /** IPv4 or IPv6 address. */
  ip: string;
  /** Port. */
  port: number;
  /** 20-byte peer id. */
  peerId: Uint8Array;
  /** Its compact IPv4 form, if the caller has it already (an empty array means IPv6). */
  compact?: Uint8Array;
}

/** What the tracker answers to an announce. */
export interface AnnounceAnswer {
  /** Seconds until the client should announce again. */
  interval: number;
  /** Seeders in the swarm. */
  complete: number;
  /** Leechers in the swarm. */
  incomplete: number;
  /** Peers for the client to connect to. */
  peers: AnnouncePeer[];
}

const text = new TextDecoder();

/** Splits a query string into keys and raw byte values, percent-decoding bytewise. */
export function parseQuery(query: string): Map<string, Uint8Array[]> {
  if (query.length > MAX_QUERY_LENGTH) {
    throw new AnnounceError(`query string longer than ${MAX_QUERY_LENGTH} bytes`);
  }
  const out = new Map<string, Uint8Array[]>();
  // Every value is a view into one buffer: allocating typed arrays is what costs most here.
  const buf = new Uint8Array(query.length);
  let used = 0;
  for (const part of query.replace(/^\?/, "").split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const rawKey = eq < 0 ? part : part.slice(0, eq);
    const key = /^[A-Za-z0-9_.~-]*$/.test(rawKey) ? rawKey : text.decode(percentDecode(rawKey));
    const start = used;
    used = percentDecodeInto(eq < 0 ? "" : part.slice(eq + 1), buf, used);
    const value = buf.subarray(start, used);
    const list = out.get(key) ?? [];
    if (list.length >= 64) throw new AnnounceError(`too many ${key} parameters`);
    list.push(value);
    out.set(key, list);
  }
  return out;
}

function percentDecode(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  return out.subarray(0, percentDecodeInto(s, out, 0));
}

/** Percent-decodes `s` into `out` from `n` on; returns where it stopped. */
function percentDecodeInto(s: string, out: Uint8Array, n: number): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = hexDigit(s.charCodeAt(i + 1));
      const lo = hexDigit(s.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) throw new AnnounceError("malformed percent-encoding");
      out[n++] = (hi << 4) | lo;
      i += 2;
    } else if (c === 0x2b /* + */) {
      out[n++] = 0x20;
    } else if (c < 0x80) {
      out[n++] = c;
    } else {
      throw new AnnounceError("query string must be ASCII");
    }
  }
  return n;
}

/** The value of a hexadecimal digit's character code (NaN included), or -1. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20; // lower-cases a letter
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

function single(q: Map<string, Uint8Array[]>, key: string): Uint8Array | undefined {
  const v = q.get(key);
  if (v && v.length > 1) throw new AnnounceError(`${key} given more than once`);
  return v?.[0];
}

function integer(q: Map<string, Uint8Array[]>, key: string, fallback?: number): number {
  const raw = single(q, key);
  if (raw === undefined) {
    if (fallback !== undefined) return fallback;
    throw new AnnounceError(`missing ${key}`);
  }
  // Up to 16 decimal digits, read straight from the bytes.
  let n = 0;
  for (const b of raw) {
    if (b < 0x30 || b > 0x39) throw new AnnounceError(`${key} must be a whole number`);
    n = n * 10 + (b - 0x30);
  }
  if (raw.length === 0 || raw.length > 16) {
    throw new AnnounceError(`${key} must be a whole number`);
  }
  if (!Number.isSafeInteger(n)) throw new AnnounceError(`${key} is too large`);
  return n;
}

function twenty(q: Map<string, Uint8Array[]>, key: string): Uint8Array {
  const v = single(q, key);
  if (!v) throw new AnnounceError(`missing ${key}`);
  if (v.length !== 20) throw new AnnounceError(`${key} must be 20 bytes, not ${v.length}`);
  return v.slice();
}

/** Parses an `/announce` query string; throws {@linkcode AnnounceError}. */
export function parseAnnounce(query: string): AnnounceParams {
  const q = parseQuery(query);
  const infoHash = twenty(q, "info_hash");
  const peerId = twenty(q, "peer_id");
  const port = integer(q, "port");
  if (port < 1 || port > 65535) throw new AnnounceError("port must be from 1 to 65535");
  const eventRaw = single(q, "event");
  const event = eventRaw === undefined || eventRaw.length === 0 ? "empty" : text.decode(eventRaw);
  if (!["started", "completed", "stopped", "empty"].includes(event)) {
    throw new AnnounceError(`unknown event ${JSON.stringify(event.slice(0, 20))}`);
  }
  return {
    infoHash,
    peerId,
    port,
    uploaded: integer(q, "uploaded", 0),
    downloaded: integer(q, "downloaded", 0),
    left: integer(q, "left"),
    event: event as AnnounceEvent,
    numwant: Math.min(MAX_NUMWANT, integer(q, "numwant", 50)),
    compact: text.decode(single(q, "compact") ?? new Uint8Array([0x31])) !== "0",
    noPeerId: text.decode(single(q, "no_peer_id") ?? new Uint8Array()) === "1",
  };
}

/** Parses a `/scrape` query string: the info-hashes asked about (none means all). */
export function parseScrape(query: string): Uint8Array[] {
  const q = parseQuery(query);
  const hashes = q.get("info_hash") ?? [];
  for (const h of hashes) {
    if (h.length !== 20) throw new AnnounceError(`info_hash must be 20 bytes, not ${h.length}`);
  }
  return hashes;
}

/**
 * Bencodes an announce answer: `peers` as a compact string of 6-byte IPv4 entries (BEP 23) with
 * IPv6 peers in `peers6`, or as a list of dictionaries when `compact` is false.
 */
export function encodeAnnounceResponse(
  a: AnnounceAnswer,
  compact: boolean,
  noPeerId = false,
): Uint8Array {
  const dict: BDict = {
    interval: a.interval,
    "min interval": Math.min(a.interval, 5),
    complete: a.complete,
    incomplete: a.incomplete,
  };
  if (compact) {
    // The hot path of a busy tracker: written directly rather than through encode(), with the
    // keys in the sorted order bencoding requires.
    for (const v of [a.interval, a.complete, a.incomplete]) {
      if (!Number.isSafeInteger(v)) throw new TypeError(`bencode: ${v} is not an integer`);
    }
    const v4 = new Uint8Array(6 * a.peers.length);
    let n4 = 0;
    const v6: Uint8Array[] = [];
    for (const p of a.peers) {
      if (p.compact?.length === 6) {
        v4.set(p.compact, n4);
        n4 += 6;
      } else if (p.compact === undefined && writeCompactV4(p.ip, p.port, v4, n4)) n4 += 6;
      else {
        const b = compactV6(p.ip, p.port);
        if (b) v6.push(b);
      }
    }
    const head =
      `d8:completei${a.complete}e10:incompletei${a.incomplete}e8:intervali${a.interval}` +
      `e12:min intervali${Math.min(a.interval, 5)}e5:peers${n4}:`;
    const parts = [latin1(head), v4.subarray(0, n4)];
    if (v6.length > 0) {
      const all = concat(v6);
      parts.push(latin1(`6:peers6${all.length}:`), all);
    }
    parts.push(latin1("e"));
    return concat(parts);
  } else {
    dict.peers = a.peers.map((p) => {
      const d: BDict = { ip: p.ip, port: p.port };
      if (!noPeerId) d["peer id"] = p.peerId;
      return d;
    });
  }
  return encode(dict);
}

/** Bencodes a tracker failure (`failure reason`), answered with HTTP 200 as clients expect. */
export function encodeFailure(reason: string): Uint8Array {
  return encode({ "failure reason": reason });
}

/** One file's counts in a scrape answer (BEP 48). */
export interface ScrapeEntry {
  /** The info-hash. */
  infoHash: Uint8Array;
  /** Seeders. */
  complete: number;
  /** Leechers. */
  incomplete: number;
  /** Completed downloads so far. */
  downloaded: number;
}

/** Bencodes a scrape answer: `files` keyed by the raw 20-byte info-hashes. */
export function encodeScrapeResponse(entries: ScrapeEntry[]): Uint8Array {
  // Keys are raw bytes; latin1 strings keep them byte for byte through encode().
  const parts: Uint8Array[] = [new TextEncoder().encode("d5:filesd")];
  const sorted = [...entries].sort((a, b) => compare(a.infoHash, b.infoHash));
  for (const e of sorted) {
    parts.push(new TextEncoder().encode("20:"), e.infoHash);
    parts.push(
      encode({ complete: e.complete, downloaded: e.downloaded, incomplete: e.incomplete }),
    );
  }
  parts.push(new TextEncoder().encode("ee"));
  return concat(parts);
}

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** An ASCII string's bytes. */
function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * Writes the 6-byte compact form of an IPv4 address (`1.2.3.4`, or `::ffff:1.2.3.4` from a
 * dual-stack socket) and port at `out[at]`; false, writing nothing, for anything else.
 */
/** The 6-byte compact form (BEP 23) of an IPv4 address and port; empty for other addresses. */
export function compactV4(ip: string, port: number): Uint8Array {
  const out = new Uint8Array(6);
  return writeCompactV4(ip, port, out, 0) ? out : new Uint8Array(0);
}

function writeCompactV4(ip: string, port: number, out: Uint8Array, at: number): boolean {
  let i = ip.startsWith("::ffff:") ? 7 : 0;
  for (let k = 0; k < 4; k++) {
    let value = 0;
    let digits = 0;
    for (; i < ip.length && digits < 4; i++, digits++) {
      const c = ip.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      value = value * 10 + c - 0x30;
    }
    if (digits === 0 || digits > 3 || value > 255) return false;
    if (k < 3 ? ip.charCodeAt(i++) !== 0x2e /* . */ : i !== ip.length) return false;
    out[at + k] = value;
  }
  out[at + 4] = port >> 8;
  out[at + 5] = port & 0xff;
  return true;
}

function compactV6(ip: string, port: number): Uint8Array | undefined {
  if (!ip.includes(":") || /^::ffff:\d/.test(ip)) return undefined;
  const [head, tail = ""] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  if (!ip.includes("::") && h.length !== 8) return undefined;
  const groups = [...h, ...new Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(18);
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i], 16);
    if (!(g >= 0 && g <= 0xffff)) return undefined;
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  out[16] = port >> 8;
  out[17] = port & 0xff;
  return out;
}
