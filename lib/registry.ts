/**
 * The tracker's state, as pure logic: who is in the swarm, what each peer holds, which file is
 * published, and who has gone silent. No sockets and no timers: the clock is injected, so tests
 * drive time by hand and the XML-RPC layer stays a thin adapter.
 *
 * @example
 * ```ts
 * import { Registry } from "./registry.ts";
 * import { makeMetainfo } from "./metainfo.ts";
 *
 * let now = 0;
 * const registry = new Registry({ now: () => now, interval: 2 });
 * const seeder = registry.register(
 *   { host: "localhost", port: 9000, peerId: "ab".repeat(20), role: "seeder" },
 *   "127.0.0.1",
 * );
 * const meta = await makeMetainfo("file.iso", 10, 5, new Uint8Array(40));
 * await registry.publish(seeder.token, meta.info);
 * now += 7_000; // more than 3 intervals of silence
 * registry.expire(); // ["localhost:9000"]
 * ```
 * @module
 */

import {
  type AnnounceAnswer,
  type AnnounceParams,
  compactV4,
  type ScrapeEntry,
} from "./announce.ts";
import { Bitfield, BitfieldError } from "./bitfield.ts";
import { fromHex, toHex } from "./hash.ts";
import { clientName } from "./wire.ts";
import { fromInfo, MAX_PIECES, type Metainfo, MetainfoError } from "./metainfo.ts";
import {
  FaultCode,
  type MetainfoResult,
  type PeerInfo,
  type RegisterParams,
  type RegisterResult,
  type Role,
} from "./tracker_api.ts";

/** Default seconds between progress reports. */
export const DEFAULT_INTERVAL = 2;
/** A peer silent for this many intervals is forgotten. */
export const EXPIRY_INTERVALS = 3;
/** Default cap on registered peers, so a flood of registrations cannot exhaust memory. */
export const DEFAULT_MAX_PEERS = 1000;

/** One of the numeric {@linkcode FaultCode} values. */
export type FaultCodeValue = typeof FaultCode[keyof typeof FaultCode];

/**
 * A request the registry refuses. `code` is the XML-RPC fault code the tracker answers with, and
 * the message is one sentence a person can act on.
 */
export class RegistryError extends Error {
  /** Builds the error. */
  constructor(readonly code: FaultCodeValue, message: string) {
    super(message);
    this.name = "RegistryError";
  }
}

/** Something that happened in the swarm, for logs and the dashboard. Times are clock ms. */
export type RegistryEvent =
  | {
    type: "joined";
    at: number;
    id: string;
    role: Role;
    address: string;
    /** True when this registration replaced an older entry with the same id (a restart). */
    replaced: boolean;
  }
  | { type: "left"; at: number; id: string }
  | { type: "expired"; at: number; id: string; silentMs: number }
  | { type: "complete"; at: number; id: string; elapsedMs: number }
  | {
    type: "published";
    at: number;
    id: string;
    name: string;
    pieceCount: number;
    infoHash: string;
  }
  | { type: "reset"; at: number; name: string };

/** Options for {@linkcode Registry}. */
export interface RegistryOptions {
  /** The clock, in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Seconds between progress reports that peers are told to keep (default 2). */
  interval?: number;
  /** Most peers kept at once (default {@linkcode DEFAULT_MAX_PEERS}). */
  maxPeers?: number;
  /** Called synchronously for every {@linkcode RegistryEvent}. */
  onEvent?: (event: RegistryEvent) => void;
  /** Seconds between announces that HTTP (BEP 3) clients are told to keep (default 30). */
  announceInterval?: number;
}

/** What the registry knows about the published file. */
export interface PublishedInfo {
  /** The bencoded info dictionary, exactly as the first seeder sent it. */
  readonly info: Uint8Array;
  /** SHA-1 of `info`, lower-case hex. */
  readonly infoHash: string;
  /** The file's name. */
  readonly name: string;
  /** The file's length in bytes. */
  readonly length: number;
  /** Bytes per piece. */
  readonly pieceLength: number;
  /** Number of pieces. */
  readonly pieceCount: number;
}

/** A read-only copy of one peer's entry. */
export interface PeerRecord {
  /** `host:port` as registered. */
  readonly id: string;
  /** The address the tracker saw the peer connect from. */
  readonly address: string;
  /** The port the peer accepts connections on. */
  readonly port: number;
  /** Its peer id, lower-case hex. */
  readonly peerId: string;
  /** Its current role (a leecher that completes becomes a seeder). */
  readonly role: Role;
  /** Its pieces, once the piece count is known and it has reported (or is a seeder). */
  readonly bitfield: Bitfield | undefined;
  /** Pieces it holds (0 while unknown). */
  readonly pieces: number;
  /** Bytes uploaded, as last reported. */
  readonly uploaded: number;
  /** Bytes downloaded, as last reported. */
  readonly downloaded: number;
  /** When it registered. */
  readonly joinedAt: number;
  /** When it last called the tracker. */
  readonly lastSeen: number;
  /** When it became complete as a leecher; undefined for seeders from the start. */
  readonly completedAt: number | undefined;
}

/** One row of {@linkcode Snapshot.peers}. */
export interface PeerRow {
  /** `host:port`. */
  readonly id: string;
  /** The address the tracker saw. */
  readonly address: string;
  /** Current role. */
  readonly role: Role;
  /** Pieces held (0 while unknown). */
  readonly pieces: number;
  /** Pieces in the file (0 until published). */
  readonly pieceCount: number;
  /** `pieces / pieceCount` as 0–100 (0 until published). */
  readonly percent: number;
  /** Bytes uploaded, as last reported. */
  readonly uploaded: number;
  /** Bytes downloaded, as last reported. */
  readonly downloaded: number;
  /** Upload rate between its last two reports, bytes/s (0 when stale). */
  readonly uploadRate: number;
  /** Download rate between its last two reports, bytes/s (0 when stale). */
  readonly downloadRate: number;
  /** When it registered. */
  readonly joinedAt: number;
  /** When it last called the tracker. */
  readonly lastSeen: number;
  /** When it completed as a leecher. */
  readonly completedAt: number | undefined;
  /** The BitTorrent client it announced as, for peers that joined over HTTP announce. */
  readonly client?: string;
}

/** Everything the dashboard draws, captured at one instant. */
export interface Snapshot {
  /** The clock when the snapshot was taken. */
  readonly now: number;
  /** Milliseconds since the registry was created. */
  readonly uptimeMs: number;
  /** Seconds between reports. */
  readonly interval: number;
  /** The published file, if any. */
  readonly metainfo:
    | {
      readonly name: string;
      readonly length: number;
      readonly pieceCount: number;
      readonly infoHash: string;
    }
    | undefined;
  /** Every peer, in join order. */
  readonly peers: readonly PeerRow[];
}

interface Entry {
  seq: number;
  token: string;
  id: string;
  address: string;
  port: number;
  peerId: string;
  /** `peerId` as bytes, kept for announce answers once needed. */
  peerIdBytes?: Uint8Array;
  /** Its BEP 23 compact address (6 bytes; empty for IPv6), kept once needed. */
  compact?: Uint8Array;
  role: Role;
  /** Known pieces, once the piece count is known. */
  bitfield: Bitfield | undefined;
  /** True once the peer sent a bitfield that was accepted. */
  reported: boolean;
  /** A bitfield sent before publication, checked when the piece count becomes known. */
  raw: Uint8Array | undefined;
  uploaded: number;
  downloaded: number;
  joinedAt: number;
  lastSeen: number;
  completedAt: number | undefined;
  /** The BitTorrent client that announced over HTTP (e.g. "libtorrent"); undefined for ours. */
  client: string | undefined;
  /** Rates from the last two reports. */
  lastReportAt: number | undefined;
  uploadRate: number;
  downloadRate: number;
}

const HOST_RE = /^[A-Za-z0-9._:[\]%-]{1,253}$/;
const PEER_ID_RE = /^[0-9a-fA-F]{40}$/;
const TOKEN_RE = /^[0-9a-f]{32}$/;

/**
 * The swarm's state: peers keyed by `host:port`, their secret tokens, and the published
 * metainfo. Every method is synchronous except {@linkcode Registry.publish}, which hashes.
 */
export class Registry {
  /** Seconds between progress reports. */
  readonly interval: number;
  readonly #now: () => number;
  readonly #maxPeers: number;
  readonly #onEvent: (event: RegistryEvent) => void;
  readonly #startedAt: number;
  readonly #byId = new Map<string, Entry>();
  readonly #byToken = new Map<string, Entry>();
  #published: PublishedInfo | undefined;
  #seq = 0;
  /** Seconds between HTTP announces. */
  readonly announceInterval: number;
  /** Downloads completed since the file was published (BEP 48's `downloaded`). */
  #completions = 0;
  #listCache: Entry[] | undefined;
  #countsCache: { complete: number; incomplete: number } | undefined;
  /** True when the metainfo was preloaded and must outlive an empty swarm. */
  #pinned = false;

  /** Makes an empty registry. Throws `RangeError` on a non-positive interval. */
  constructor(options: RegistryOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.interval = options.interval ?? DEFAULT_INTERVAL;
    if (!(this.interval > 0) || !Number.isFinite(this.interval)) {
      throw new RangeError(`interval must be a positive number of seconds, not ${this.interval}`);
    }
    this.#maxPeers = options.maxPeers ?? DEFAULT_MAX_PEERS;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#startedAt = this.#now();
    this.announceInterval = options.announceInterval ?? 30;
  }

  /** How many peers are registered. */
  get size(): number {
    return this.#byId.size;
  }

  /** The published file, or undefined before the first seeder publishes. */
  get published(): PublishedInfo | undefined {
    return this.#published;
  }

  /**
   * Adds a peer seen at `address` and issues its secret token. Registering a `host:port` that is
   * already known replaces the old entry (a restarted peer) and invalidates its old token.
   */
  register(params: RegisterParams, address: string): RegisterResult {
    const { host, port, role } = params;
    if (typeof host !== "string" || !HOST_RE.test(host)) {
      throw new RegistryError(
        FaultCode.badParams,
        "host must be a host name or IP address of 1 to 253 characters",
      );
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RegistryError(FaultCode.badParams, `port must be from 1 to 65535, not ${port}`);
    }
    if (typeof params.peerId !== "string" || !PEER_ID_RE.test(params.peerId)) {
      throw new RegistryError(FaultCode.badParams, "peerId must be 40 hexadecimal digits");
    }
    if (role !== "seeder" && role !== "leecher") {
      throw new RegistryError(FaultCode.badParams, 'role must be "seeder" or "leecher"');
    }
    const id = `${host}:${port}`;
    const old = this.#byId.get(id);
    if (old) {
      this.#byToken.delete(old.token);
      this.#byId.delete(id);
      this.#changed();
    } else if (this.#byId.size >= this.#maxPeers) {
      throw new RegistryError(
        FaultCode.badParams,
        `the tracker already has ${this.#maxPeers} peers, its limit`,
      );
    }
    const now = this.#now();
    const entry = this.#newEntry(id, address, port, params.peerId.toLowerCase(), role, now);
    if (this.#published && role === "seeder") {
      entry.bitfield = Bitfield.full(this.#published.pieceCount);
    } else if (this.#published) entry.bitfield = new Bitfield(this.#published.pieceCount);
    this.#byId.set(id, entry);
    this.#changed();
    this.#byToken.set(entry.token, entry);
    this.#onEvent({ type: "joined", at: now, id, role, address, replaced: old !== undefined });
    return { token: entry.token, id, address, interval: this.interval };
  }

  /**
   * Publishes the file's bencoded info dictionary on behalf of a seeder. Publishing the same
   * info again is accepted; a different one is a {@linkcode FaultCode.conflict}.
   */
  async publish(token: string, info: Uint8Array): Promise<{ infoHash: string }> {
    const entry = this.#touch(token);
    const meta = await checkInfo(info);
    // Hashing awaited: the peer may have left and another peer may have published meanwhile.
    this.#entry(token);
    return this.#adoptMetainfo(meta, entry.id, false);
  }

  /**
   * Publishes a torrent's info dictionary from the tracker's own side (`tracker --torrent`), so
   * real clients can announce before any of our seeders joins. It stays published when the
   * swarm empties.
   */
  async preload(info: Uint8Array): Promise<{ infoHash: string }> {
    return this.#adoptMetainfo(await checkInfo(info), "tracker", true);
  }

  #adoptMetainfo(meta: Metainfo, by: string, pinned: boolean): { infoHash: string } {
    const current = this.#published;
    if (current) {
      if (current.infoHash === meta.infoHashHex) return { infoHash: current.infoHash };
      throw new RegistryError(
        FaultCode.conflict,
        `this tracker already serves ${JSON.stringify(current.name)} (info-hash ${
          current.infoHash.slice(0, 8)
        }…), a different file`,
      );
    }
    this.#published = {
      info: meta.info,
      infoHash: meta.infoHashHex,
      name: meta.name,
      length: meta.length,
      pieceLength: meta.pieceLength,
      pieceCount: meta.pieceCount,
    };
    this.#pinned = pinned;
    this.#completions = 0;
    const now = this.#now();
    this.#onEvent({
      type: "published",
      at: now,
      id: by,
      name: meta.name,
      pieceCount: meta.pieceCount,
      infoHash: meta.infoHashHex,
    });
    // Now that the piece count is known, give every peer a bitfield of the right size.
    for (const e of this.#byId.values()) this.#adopt(e, meta.pieceCount, now);
    return { infoHash: meta.infoHashHex };
  }

  /** The published metainfo; {@linkcode FaultCode.notPublished} before a seeder publishes. */
  getMetainfo(): MetainfoResult {
    if (!this.#published) {
      throw new RegistryError(FaultCode.notPublished, "no seeder has published the metainfo yet");
    }
    return { info: this.#published.info.slice(), infoHash: this.#published.infoHash };
  }

  /**
   * Records a peer's progress. `bitfield` is in BEP 3 layout; an empty one means "no change"
   * (a peer that has no metainfo yet). Before publication the bytes are kept and checked once
   * the piece count is known. A leecher whose bitfield becomes complete turns into a seeder.
   */
  reportProgress(
    token: string,
    bitfield: Uint8Array,
    uploaded: number,
    downloaded: number,
  ): { interval: number } {
    const entry = this.#entry(token);
    for (const [what, n] of [["uploaded", uploaded], ["downloaded", downloaded]] as const) {
      if (!Number.isSafeInteger(n) || n < 0) {
        throw new RegistryError(
          FaultCode.badParams,
          `${what} must be a whole number of bytes from 0 to 2^53, not ${n}`,
        );
      }
    }
    const now = this.#now();
    if (bitfield.length > 0) {
      if (this.#published) {
        let bf;
        try {
          bf = Bitfield.fromBytes(bitfield, this.#published.pieceCount);
        } catch (e) {
          if (!(e instanceof BitfieldError)) throw e;
          throw new RegistryError(
            FaultCode.badParams,
            `${e.message} for ${this.#published.pieceCount} pieces`,
          );
        }
        entry.bitfield = bf;
        entry.reported = true;
        this.#checkComplete(entry, now);
      } else {
        if (bitfield.length > Bitfield.byteLength(MAX_PIECES)) {
          throw new RegistryError(
            FaultCode.badParams,
            `bitfield is ${bitfield.length} bytes, more than any file this tracker accepts`,
          );
        }
        entry.raw = bitfield.slice();
      }
    }
    recordTransfer(entry, uploaded, downloaded, now);
    return { interval: this.interval };
  }

  /**
   * Every peer except the caller, in join order. A bitfield is included once it is known (a
   * seeder's counts as full); otherwise it is empty.
   */
  listPeers(token: string): PeerInfo[] {
    const self = this.#touch(token);
    const out: PeerInfo[] = [];
    for (const e of this.#ordered()) {
      if (e === self) continue;
      const known = e.bitfield !== undefined && (e.reported || e.role === "seeder");
      out.push({
        id: e.id,
        address: e.address,
        port: e.port,
        peerId: e.peerId,
        role: e.role,
        pieces: e.bitfield?.count ?? 0,
        bitfield: known ? e.bitfield!.toBytes() : new Uint8Array(0),
      });
    }
    return out;
  }

  /** Removes the caller from the swarm now; its token stops working. */
  leave(token: string): void {
    const entry = this.#entry(token);
    this.#remove(entry);
    const now = this.#now();
    this.#onEvent({ type: "left", at: now, id: entry.id });
    this.#resetIfEmpty(now);
  }

  /**
   * Forgets peers silent for more than {@linkcode EXPIRY_INTERVALS} intervals and returns their
   * ids. When the swarm becomes empty the metainfo is forgotten too, so a later seeder may
   * publish a different file without restarting the tracker.
   */
  expire(): string[] {
    const now = this.#now();
    const limit = EXPIRY_INTERVALS * this.interval * 1000;
    // Real clients re-announce on their own schedule (libtorrent: at most every 5 minutes).
    const announceLimit = (2 * Math.max(this.announceInterval, 300) + 60) * 1000;
    const gone: string[] = [];
    for (const e of this.#ordered()) {
      if (now - e.lastSeen > (e.client === undefined ? limit : announceLimit)) {
        this.#remove(e);
        gone.push(e.id);
        this.#onEvent({ type: "expired", at: now, id: e.id, silentMs: now - e.lastSeen });
      }
    }
    if (gone.length > 0) this.#resetIfEmpty(now);
    return gone;
  }

  /**
   * An HTTP announce from a BitTorrent client (BEP 3). The client is keyed by the address its
   * connection came from and the port it announced, never by a client-supplied `ip=`: otherwise
   * anyone could point the swarm at a third party or replace another peer's entry. Its progress
   * comes from `left`. Throws {@linkcode RegistryError} for an unknown info-hash.
   */
  announce(a: AnnounceParams, address: string): AnnounceAnswer {
    const pub = this.#published;
    if (!pub || toHex(a.infoHash) !== pub.infoHash) {
      throw new RegistryError(
        FaultCode.badParams,
        pub
          ? "this tracker serves another torrent (unknown info_hash)"
          : "no seeder has published a torrent on this tracker yet",
      );
    }
    if (a.left > pub.length) {
      throw new RegistryError(FaultCode.badParams, "left is larger than the file");
    }
    const id = `${address.includes(":") ? `[${address}]` : address}:${a.port}`;
    const now = this.#now();
    let entry = this.#byId.get(id);
    if (a.event === "stopped") {
      if (entry?.client !== undefined) {
        this.#remove(entry);
        this.#onEvent({ type: "left", at: now, id });
        this.#resetIfEmpty(now);
      }
      return { interval: this.announceInterval, ...this.#counts(), peers: [] };
    }
    if (entry && entry.client === undefined) {
      throw new RegistryError(FaultCode.badParams, `${id} is already registered over XML-RPC`);
    }
    if (!entry) {
      if (this.#byId.size >= this.#maxPeers) {
        throw new RegistryError(
          FaultCode.badParams,
          `the tracker already has ${this.#maxPeers} peers`,
        );
      }
      const role = a.left === 0 ? "seeder" : "leecher";
      entry = this.#newEntry(id, address, a.port, toHex(a.peerId), role, now);
      entry.client = clientName(a.peerId);
      this.#byId.set(id, entry);
      this.#changed();
      this.#changed();
      this.#byToken.set(entry.token, entry);
      this.#onEvent({ type: "joined", at: now, id, role: entry.role, address, replaced: false });
    }
    // The announce tells bytes left, not which pieces: count whole pieces held, for display.
    const held = a.left === 0
      ? pub.pieceCount
      : Math.floor((pub.length - a.left) / pub.pieceLength);
    if (entry.bitfield?.count !== held) {
      const bf = new Bitfield(pub.pieceCount);
      for (let i = 0; i < held; i++) bf.set(i);
      entry.bitfield = bf;
    }
    entry.peerId = toHex(a.peerId);
    entry.peerIdBytes = a.peerId;
    recordTransfer(entry, a.uploaded, a.downloaded, now);
    if (a.left === 0) this.#checkComplete(entry, now);
    // A random sample, so every client learns a different part of a large swarm. A seeder gets
    // no seeders. Drawn by index from the cached list: no per-request copy of the whole swarm.
    const all = this.#list();
    const wanted = (e: Entry) => e !== entry && !(a.left === 0 && e.role === "seeder");
    const peers: AnnounceAnswer["peers"] = [];
    const take = (e: Entry) =>
      peers.push({
        ip: e.address,
        port: e.port,
        peerId: e.peerIdBytes ??= fromHex(e.peerId),
        compact: e.compact ??= compactV4(e.address, e.port),
      });
    if (a.numwant * 4 < all.length) {
      // Few from many: random indices, rejecting repeats and unwanted entries.
      const seen = new Set<number>();
      for (let tries = 0; peers.length < a.numwant && tries < 8 * a.numwant; tries++) {
        const i = Math.floor(Math.random() * all.length);
        if (seen.has(i)) continue;
        seen.add(i);
        if (wanted(all[i])) take(all[i]);
      }
    } else {
      // A partial Fisher-Yates shuffle of a copy, drawing only as many as wanted.
      const pool = all.filter(wanted);
      for (let i = 0; i < Math.min(a.numwant, pool.length); i++) {
        const j = i + Math.floor(Math.random() * (pool.length - i));
        const e = pool[j];
        pool[j] = pool[i];
        take(e);
      }
    }
    return { interval: this.announceInterval, ...this.#counts(), peers };
  }

  /** Scrape counts (BEP 48) for the published torrent, or none before publication. */
  scrape(): ScrapeEntry[] {
    const pub = this.#published;
    if (!pub) return [];
    return [{ infoHash: fromHex(pub.infoHash), ...this.#counts(), downloaded: this.#completions }];
  }

  #counts(): { complete: number; incomplete: number } {
    if (this.#countsCache) return this.#countsCache;
    let complete = 0;
    for (const e of this.#byId.values()) if (e.role === "seeder") complete++;
    return this.#countsCache = { complete, incomplete: this.#byId.size - complete };
  }

  /** Every entry in join order, cached until the swarm changes (a busy tracker's hot path). */
  #list(): Entry[] {
    return this.#listCache ??= [...this.#byId.values()];
  }

  /** Forgets the cached list and counts: someone joined, left, or completed. */
  #changed(): void {
    this.#listCache = undefined;
    this.#countsCache = undefined;
  }

  /** A copy of the peer registered as `id` (`host:port`), or undefined. */
  peer(id: string): PeerRecord | undefined {
    const e = this.#byId.get(id);
    if (!e) return undefined;
    return {
      id: e.id,
      address: e.address,
      port: e.port,
      peerId: e.peerId,
      role: e.role,
      bitfield: e.bitfield ? Bitfield.fromBytes(e.bitfield.bytes, e.bitfield.size) : undefined,
      pieces: e.bitfield?.count ?? 0,
      uploaded: e.uploaded,
      downloaded: e.downloaded,
      joinedAt: e.joinedAt,
      lastSeen: e.lastSeen,
      completedAt: e.completedAt,
    };
  }

  /** Everything the dashboard shows, in join order. */
  snapshot(): Snapshot {
    const now = this.#now();
    const pub = this.#published;
    const pieceCount = pub?.pieceCount ?? 0;
    // Rates are from the last two reports; a peer that stopped reporting is not moving.
    const stale = 2 * this.interval * 1000;
    return {
      now,
      uptimeMs: now - this.#startedAt,
      interval: this.interval,
      metainfo: pub
        ? { name: pub.name, length: pub.length, pieceCount: pub.pieceCount, infoHash: pub.infoHash }
        : undefined,
      peers: this.#ordered().map((e) => {
        const pieces = e.bitfield?.count ?? 0;
        const fresh = e.lastReportAt !== undefined && now - e.lastReportAt <= stale;
        return {
          id: e.id,
          address: e.address,
          role: e.role,
          pieces,
          pieceCount,
          percent: pieceCount > 0 ? (pieces / pieceCount) * 100 : 0,
          uploaded: e.uploaded,
          downloaded: e.downloaded,
          uploadRate: fresh ? e.uploadRate : 0,
          downloadRate: fresh ? e.downloadRate : 0,
          joinedAt: e.joinedAt,
          lastSeen: e.lastSeen,
          completedAt: e.completedAt,
          ...(e.client ? { client: e.client } : {}),
        };
      }),
    };
  }

  #newEntry(
    id: string,
    address: string,
    port: number,
    peerId: string,
    role: Role,
    now: number,
  ): Entry {
    return {
      seq: this.#seq++,
      token: newToken(),
      id,
      address,
      port,
      peerId,
      role,
      bitfield: undefined,
      reported: false,
      raw: undefined,
      uploaded: 0,
      downloaded: 0,
      joinedAt: now,
      lastSeen: now,
      completedAt: undefined,
      client: undefined,
      lastReportAt: undefined,
      uploadRate: 0,
      downloadRate: 0,
    };
  }

  /** The entry for `token`, refreshing its last-seen time. */
  #touch(token: string): Entry {
    const entry = this.#entry(token);
    entry.lastSeen = this.#now();
    return entry;
  }

  #entry(token: string): Entry {
    const entry = typeof token === "string" && TOKEN_RE.test(token)
      ? this.#byToken.get(token)
      : undefined;
    if (!entry) {
      throw new RegistryError(
        FaultCode.unknownToken,
        "unknown token: the peer never registered, left or expired, so it must register again",
      );
    }
    return entry;
  }

  #ordered(): Entry[] {
    // Already in join order: entries are only added with the next seq, and a Map iterates in
    // insertion order.
    return [...this.#byId.values()];
  }

  #remove(entry: Entry): void {
    this.#byId.delete(entry.id);
    this.#changed();
    this.#byToken.delete(entry.token);
  }

  #resetIfEmpty(now: number): void {
    if (this.#byId.size === 0 && this.#published && !this.#pinned) {
      const name = this.#published.name;
      this.#published = undefined;
      this.#onEvent({ type: "reset", at: now, name });
    }
  }

  /** Gives a peer that joined before publication a bitfield of `pieceCount` pieces. */
  #adopt(entry: Entry, pieceCount: number, now: number): void {
    const raw = entry.raw;
    entry.raw = undefined;
    if (raw) {
      try {
        entry.bitfield = Bitfield.fromBytes(raw, pieceCount);
        entry.reported = true;
        this.#checkComplete(entry, now);
        return;
      } catch (e) {
        if (!(e instanceof BitfieldError)) throw e;
        // It was sent before the size was known; its next report gets the error instead.
      }
    }
    entry.bitfield = entry.role === "seeder" ? Bitfield.full(pieceCount) : new Bitfield(pieceCount);
  }

  #checkComplete(entry: Entry, now: number): void {
    if (entry.role === "leecher" && entry.bitfield?.complete) {
      entry.role = "seeder";
      this.#changed();
      entry.completedAt = now;
      this.#completions++;
      this.#onEvent({ type: "complete", at: now, id: entry.id, elapsedMs: now - entry.joinedAt });
    }
  }
}

/** Records reported byte counts, and the rates since the previous report. */
function recordTransfer(entry: Entry, uploaded: number, downloaded: number, now: number): void {
  if (entry.lastReportAt !== undefined && now > entry.lastReportAt) {
    const seconds = (now - entry.lastReportAt) / 1000;
    entry.uploadRate = Math.max(0, uploaded - entry.uploaded) / seconds;
    entry.downloadRate = Math.max(0, downloaded - entry.downloaded) / seconds;
  }
  entry.lastReportAt = now;
  entry.uploaded = uploaded;
  entry.downloaded = downloaded;
  entry.lastSeen = now;
}

async function checkInfo(info: Uint8Array): Promise<Metainfo> {
  try {
    return await fromInfo(info);
  } catch (e) {
    if (!(e instanceof MetainfoError)) throw e;
    throw new RegistryError(FaultCode.badParams, `the info dictionary is invalid: ${e.message}`);
  }
}

function newToken(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(16)));
}
