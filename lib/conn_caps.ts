/**
 * Connection caps: how many peers a peer keeps connected in all, and how many connections one IP
 * address may hold. A client that opens connection after connection from one address is held to
 * its share instead of filling the table that honest peers need. The decision is pure: the
 * engine counts, this module says yes or why not.
 *
 * @example
 * ```ts
 * import { refuseConnection } from "./conn_caps.ts";
 * const caps = { maxPeers: 50, maxPeersPerIp: 8, exemptLoopback: true };
 * refuseConnection(caps, "203.0.113.5", { total: 12, sameIp: 8 });
 * // "203.0.113.5 already has 8 connections, the most one address may have (--max-peers-per-ip 8)"
 * ```
 * @module
 */

/** The caps a peer enforces. */
export interface ConnectionCaps {
  /** Most connections at once (`--max-peers`). */
  maxPeers: number;
  /** Most connections, handshaken or not, with one IP address (`--max-peers-per-ip`). */
  maxPeersPerIp: number;
  /**
   * Loopback addresses are not held to {@linkcode ConnectionCaps.maxPeersPerIp}: a local demo
   * swarm runs every peer on 127.0.0.1, so all of them share one address.
   */
  exemptLoopback: boolean;
}

/** What the engine counts before it lets a connection in (or dials one). */
export interface ConnectionCounts {
  /** Connections that count against {@linkcode ConnectionCaps.maxPeers}. */
  total: number;
  /** Connections already open or being made with the same IP address. */
  sameIp: number;
}

/**
 * The form of an address used to count connections per IP: IPv4-mapped IPv6 addresses
 * (`::ffff:192.0.2.1`, as a dual-stack listener reports IPv4 clients) are the IPv4 host they
 * name, and IPv6 is compared in lower case.
 */
export function ipKey(address: string): string {
  const a = address.toLowerCase().replace(/^\[|\]$/g, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1] : a;
}

/** True for 127.0.0.0/8 and ::1 (also in IPv4-mapped or bracketed form). */
export function isLoopback(address: string): boolean {
  const a = ipKey(address);
  return /^127\.\d+\.\d+\.\d+$/.test(a) || a === "::1" || a === "0:0:0:0:0:0:0:1";
}

/**
 * Why a new connection with `address` must not be made or kept, in a clause for the log; or
 * undefined when the caps leave room for it.
 */
export function refuseConnection(
  caps: ConnectionCaps,
  address: string,
  counts: ConnectionCounts,
): string | undefined {
  if (counts.total >= caps.maxPeers) {
    return `already ${counts.total} peers connected, the most allowed (--max-peers ${caps.maxPeers})`;
  }
  if (caps.exemptLoopback && isLoopback(address)) return undefined;
  if (counts.sameIp >= caps.maxPeersPerIp) {
    return `${ipKey(address)} already has ${counts.sameIp} connections, the most one address ` +
      `may have (--max-peers-per-ip ${caps.maxPeersPerIp})`;
  }
  return undefined;
}
