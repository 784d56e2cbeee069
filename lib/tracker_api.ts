/**
 * The tracker's XML-RPC interface: method names, argument and result shapes, and fault codes.
 * Both the tracker (server) and the peers (client) import these, so the two cannot drift apart.
 *
 * Binary values (bitfields, the info dictionary) travel as XML-RPC `base64`; byte counts as
 * `double`, since XML-RPC's `int` is 32-bit.
 *
 * @example
 * ```ts
 * import { Methods } from "./tracker_api.ts";
 * Methods.register; // "swarm.register"
 * ```
 * @module
 */

/** XML-RPC method names the tracker answers. */
export const Methods = {
  /** `swarm.register(RegisterParams) → RegisterResult`: join the swarm. */
  register: "swarm.register",
  /**
   * `swarm.publish(token, info: base64) → { infoHash }`: a seeder (or a leecher started from a
   * .torrent) publishes the metainfo; the first publication wins.
   */
  publish: "swarm.publish",
  /** `swarm.getMetainfo() → MetainfoResult`: the published metainfo. */
  getMetainfo: "swarm.getMetainfo",
  /** `swarm.reportProgress(token, bitfield: base64, uploaded, downloaded) → { interval }`. */
  reportProgress: "swarm.reportProgress",
  /** `swarm.listPeers(token) → PeerInfo[]`: every other peer with its pieces. */
  listPeers: "swarm.listPeers",
  /** `swarm.leave(token) → true`: leave the swarm now. */
  leave: "swarm.leave",
} as const;

/** What a peer says about itself when it registers. */
export interface RegisterParams {
  /** The host name the peer was started with (shown in the dashboard's id `host:port`). */
  host: string;
  /** The TCP port it accepts peer connections on. */
  port: number;
  /** Its 20-byte BEP 3 peer id, hex. */
  peerId: string;
  /** "seeder" or "leecher". */
  role: Role;
}

/** A peer's role. */
export type Role = "seeder" | "leecher";

/** The tracker's answer to a registration. */
export interface RegisterResult {
  /** Secret that every later call of this peer must carry. */
  token: string;
  /** The peer's id in the swarm, `host:port`. */
  id: string;
  /** The address the tracker saw the peer connect from (what other peers will dial). */
  address: string;
  /** Seconds between progress reports; a peer silent for 3 intervals is forgotten. */
  interval: number;
}

/** The published metainfo. */
export interface MetainfoResult {
  /** The bencoded info dictionary (BEP 3). */
  info: Uint8Array;
  /** Its SHA-1, hex. */
  infoHash: string;
}

/** One peer as {@linkcode Methods.listPeers} describes it. */
export interface PeerInfo {
  /** `host:port` as registered. */
  id: string;
  /** Address to dial (as the tracker saw it). */
  address: string;
  /** Port to dial. */
  port: number;
  /** Its peer id, hex. */
  peerId: string;
  /** "seeder" or "leecher". */
  role: Role;
  /** Pieces it holds. */
  pieces: number;
  /** Its bitfield in BEP 3 layout (empty until it reports one). */
  bitfield: Uint8Array;
}

/** Fault codes the tracker returns. */
export const FaultCode = {
  /** Arguments missing, of the wrong type or out of range. */
  badParams: 1,
  /** The token is unknown (never issued, or the peer expired or left): register again. */
  unknownToken: 2,
  /** No seeder has published the metainfo yet. */
  notPublished: 3,
  /** A different file is already published on this tracker. */
  conflict: 4,
  /** The request body is too large or not acceptable XML. */
  badRequest: 5,
} as const;
