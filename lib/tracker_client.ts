/**
 * A typed client for the tracker's XML-RPC interface ({@linkcode Methods}): one method per
 * tracker method, a timeout on every call, faults as {@linkcode TrackerFault} with the tracker's
 * code, network failures as {@linkcode TrackerUnreachable}, and every result checked against
 * its expected shape before it is returned.
 *
 * It speaks XML-RPC with `./xmlrpc.ts` over Deno's own `fetch`, with an abort signal on every
 * request, so a timed-out call does not keep its request running.
 *
 * @example
 * ```ts
 * import { TrackerClient, TrackerFault } from "./tracker_client.ts";
 * import { FaultCode } from "./tracker_api.ts";
 * const tracker = new TrackerClient("http://localhost:8000/");
 * const me = await tracker.register({
 *   host: "localhost", port: 9001, peerId: "ab".repeat(20), role: "leecher",
 * });
 * try {
 *   const { info, infoHash } = await tracker.getMetainfo();
 * } catch (e) {
 *   if (e instanceof TrackerFault && e.code === FaultCode.notPublished) {
 *     // no seeder yet: try again after me.interval seconds
 *   }
 * }
 * await tracker.leave(me.token);
 * ```
 * @module
 */

import { sha1, toHex } from "./hash.ts";
import {
  type MetainfoResult,
  Methods,
  type PeerInfo,
  type RegisterParams,
  type RegisterResult,
} from "./tracker_api.ts";
import {
  parseMethodResponse,
  serializeMethodCall,
  XmlRpcFault,
  XmlRpcParseError,
  type XmlRpcValue,
} from "./xmlrpc.ts";
import { BodyTooLargeError, readBodyLimited } from "./xmlrpc_common.ts";

/** Default per-call timeout: 5 seconds. */
export const DEFAULT_TIMEOUT_MS = 5000;
/** Largest response accepted (a peer list with bitfields for a big swarm fits easily). */
export const MAX_RESPONSE_BYTES = 32 << 20;

/** Base class of every error the client throws. */
export class TrackerError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TrackerError";
  }
}

/** The tracker refused the call. `code` is a {@linkcode FaultCode} (or an XML-RPC code). */
export class TrackerFault extends TrackerError {
  /** Builds the error. */
  constructor(
    /** The fault code. */
    readonly code: number,
    /** The tracker's message. */
    message: string,
    /** The XML-RPC method that failed. */
    readonly method: string,
  ) {
    super(message);
    this.name = "TrackerFault";
  }
}

/** The tracker could not be reached, or did not answer in time; `cause` holds the reason. */
export class TrackerUnreachable extends TrackerError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TrackerUnreachable";
  }
}

/** The tracker answered, but not with the XML-RPC response that was expected. */
export class TrackerBadResponse extends TrackerError {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TrackerBadResponse";
  }
}

/** Options for {@linkcode TrackerClient}. */
export interface TrackerClientOptions {
  /** Milliseconds each call may take (default {@linkcode DEFAULT_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Aborts every call in flight, e.g. when the peer shuts down. */
  signal?: AbortSignal;
}

const HEX40 = /^[0-9a-f]{40}$/;

/** A typed XML-RPC client for one tracker. */
export class TrackerClient {
  /** The tracker's XML-RPC endpoint. */
  readonly url: string;
  /** Per-call timeout in milliseconds. */
  readonly timeoutMs: number;
  readonly #signal: AbortSignal | undefined;

  /** Makes a client for the tracker at `url` (e.g. `http://localhost:8000/`). */
  constructor(url: string, options: TrackerClientOptions = {}) {
    this.url = new URL(url).href;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#signal = options.signal;
  }

  /** Joins the swarm (`swarm.register`). */
  async register(params: RegisterParams): Promise<RegisterResult> {
    const args = { host: params.host, port: params.port, peerId: params.peerId, role: params.role };
    const r = this.#struct(Methods.register, await this.#call(Methods.register, [args]));
    const interval = r.interval;
    if (typeof interval !== "number" || !(interval > 0) || !Number.isFinite(interval)) {
      throw this.#shape(Methods.register, "interval is not a positive number");
    }
    return {
      token: this.#string(Methods.register, r.token, "token", /^[0-9a-f]{32}$/),
      id: this.#string(Methods.register, r.id, "id"),
      address: this.#string(Methods.register, r.address, "address"),
      interval,
    };
  }

  /** Publishes the bencoded info dictionary as a seeder (`swarm.publish`). */
  async publish(token: string, info: Uint8Array): Promise<{ infoHash: string }> {
    const r = this.#struct(Methods.publish, await this.#call(Methods.publish, [token, info]));
    return { infoHash: this.#string(Methods.publish, r.infoHash, "infoHash", HEX40) };
  }

  /**
   * Fetches the published metainfo (`swarm.getMetainfo`), checking that the info dictionary
   * really hashes to the info-hash the tracker names.
   */
  async getMetainfo(): Promise<MetainfoResult> {
    const m = Methods.getMetainfo;
    const r = this.#struct(m, await this.#call(m, []));
    const infoHash = this.#string(m, r.infoHash, "infoHash", HEX40);
    const info = this.#bytes(m, r.info, "info");
    if (toHex(await sha1(info)) !== infoHash) {
      throw this.#shape(m, "the info dictionary does not match its info-hash");
    }
    return { info, infoHash };
  }

  /** Reports progress (`swarm.reportProgress`); returns the interval to report at. */
  async reportProgress(
    token: string,
    bitfield: Uint8Array,
    uploaded: number,
    downloaded: number,
  ): Promise<{ interval: number }> {
    const m = Methods.reportProgress;
    const r = this.#struct(m, await this.#call(m, [token, bitfield, uploaded, downloaded]));
    if (typeof r.interval !== "number" || !(r.interval > 0) || !Number.isFinite(r.interval)) {
      throw this.#shape(m, "interval is not a positive number");
    }
    return { interval: r.interval };
  }

  /** Every other peer in the swarm with its pieces (`swarm.listPeers`). */
  async listPeers(token: string): Promise<PeerInfo[]> {
    const m = Methods.listPeers;
    const list = await this.#call(m, [token]);
    if (!Array.isArray(list)) throw this.#shape(m, "the result is not an array");
    return list.map((item) => {
      const p = this.#struct(m, item);
      const port = p.port;
      if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw this.#shape(m, "a peer's port is not a port number");
      }
      const pieces = p.pieces;
      if (typeof pieces !== "number" || !Number.isSafeInteger(pieces) || pieces < 0) {
        throw this.#shape(m, "a peer's pieces is not a count");
      }
      const role = p.role;
      if (role !== "seeder" && role !== "leecher") throw this.#shape(m, "a peer's role is unknown");
      return {
        id: this.#string(m, p.id, "id"),
        address: this.#string(m, p.address, "address"),
        port,
        peerId: this.#string(m, p.peerId, "peerId", HEX40),
        role,
        pieces,
        bitfield: this.#bytes(m, p.bitfield, "bitfield"),
      };
    });
  }

  /** Leaves the swarm now (`swarm.leave`); the token stops working. */
  async leave(token: string): Promise<void> {
    const r = await this.#call(Methods.leave, [token]);
    if (r !== true) throw this.#shape(Methods.leave, "the result is not true");
  }

  /** One XML-RPC call with the timeout; faults and failures become typed errors. */
  async #call(method: string, params: XmlRpcValue[]): Promise<XmlRpcValue> {
    const body = serializeMethodCall(method, params);
    const controller = new AbortController();
    let timedOut = false;
    // A plain timer (not AbortSignal.timeout) so it is cleared as soon as the call ends.
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    const cancel = () => controller.abort();
    this.#signal?.addEventListener("abort", cancel);
    const failed = (e: unknown): TrackerError => {
      if (timedOut) {
        return new TrackerUnreachable(
          `the tracker at ${this.url} did not answer ${method} within ${this.timeoutMs / 1000} s`,
          { cause: e },
        );
      }
      if (this.#signal?.aborted) {
        return new TrackerUnreachable(`${method} was cancelled`, { cause: e });
      }
      return new TrackerUnreachable(`cannot reach the tracker at ${this.url}: ${reason(e)}`, {
        cause: e,
      });
    };
    try {
      if (this.#signal?.aborted) throw failed(this.#signal.reason);
      let res: Response;
      let text: string;
      try {
        res = await fetch(this.url, {
          method: "POST",
          headers: { "Content-Type": "text/xml", Accept: "text/xml" },
          body,
          signal: controller.signal,
        });
        text = await readBodyLimited(res.body, MAX_RESPONSE_BYTES);
      } catch (e) {
        if (e instanceof BodyTooLargeError) {
          throw new TrackerBadResponse(`the tracker's answer to ${method} is too large`);
        }
        throw failed(e);
      }
      try {
        return parseMethodResponse(text, { maxLength: MAX_RESPONSE_BYTES });
      } catch (e) {
        if (e instanceof XmlRpcFault) throw new TrackerFault(e.faultCode, e.faultString, method);
        if (!(e instanceof XmlRpcParseError)) throw e;
        const what = res.ok ? "a response that is not XML-RPC" : `HTTP ${res.status}`;
        throw new TrackerBadResponse(`the tracker at ${this.url} answered ${method} with ${what}`, {
          cause: e,
        });
      }
    } finally {
      clearTimeout(timer);
      this.#signal?.removeEventListener("abort", cancel);
    }
  }

  #shape(method: string, what: string): TrackerBadResponse {
    return new TrackerBadResponse(`the tracker's answer to ${method} is malformed: ${what}`);
  }

  #struct(method: string, v: XmlRpcValue): Record<string, XmlRpcValue> {
    if (
      v === undefined || v === null || typeof v !== "object" || Array.isArray(v) ||
      v instanceof Date || v instanceof Uint8Array
    ) {
      throw this.#shape(method, "expected a struct");
    }
    return v;
  }

  #string(method: string, v: XmlRpcValue, what: string, re?: RegExp): string {
    if (typeof v !== "string" || (re && !re.test(v))) {
      throw this.#shape(method, `${what} is not ${re ? "well-formed" : "a string"}`);
    }
    return v;
  }

  #bytes(method: string, v: XmlRpcValue, what: string): Uint8Array {
    if (!(v instanceof Uint8Array)) throw this.#shape(method, `${what} is not base64`);
    return v; // the parser made it for this answer alone
  }
}

/**
 * The most specific part of a network error: Deno's fetch says "fetch failed" and keeps the
 * detail ("…: Connection refused (os error 111)") in its cause chain.
 */
function reason(e: unknown): string {
  let err: unknown = e;
  while (err instanceof Error && err.cause instanceof Error) err = err.cause;
  const msg = err instanceof Error ? err.message : String(err);
  const parts = msg.split(": ");
  return parts[parts.length - 1] || msg;
}
