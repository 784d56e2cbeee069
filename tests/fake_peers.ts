/**
 * Misbehaving seeders for the process tests, run inside the test process: each listens on a free
 * port on 127.0.0.1, registers with the real tracker (through `lib/tracker_client.ts`) as a seeder
 * with a full bitfield so real leechers dial it, speaks the wire protocol with `lib/wire.ts`, and
 * then misbehaves in one way:
 *
 * - `"corrupt"`: answers every request with the right bytes but the first one flipped, so every
 *   piece it contributes to fails its SHA-1 check;
 * - `"stalled"`: completes the handshake, sends a full bitfield, an unchoke and (a lie, as it
 *   claims every piece) `interested`, reads every request and never answers one: a peer that
 *   takes upload slots and gives nothing back.
 *
 * @example
 * ```ts
 * import { FakeSeeder, metainfoOf } from "./fake_peers.ts";
 * const liar = new FakeSeeder(await metainfoOf(swarm), original, swarm.trackerUrl, "corrupt");
 * await liar.register();
 * // … real leechers download …
 * await liar.close();
 * ```
 * @module
 */

import { concat } from "../lib/bencode.ts";
import { Bitfield } from "../lib/bitfield.ts";
import { toHex } from "../lib/hash.ts";
import { fromInfo, type Metainfo } from "../lib/metainfo.ts";
import { TrackerClient } from "../lib/tracker_client.ts";
import { encodeHandshake, encodeMessage, WireDecoder } from "../lib/wire.ts";
import { HOST, type Swarm } from "./swarm_helpers.ts";

/** A fresh 20-byte peer id in the `-TEST01-` style (the engine names its client "TE"). */
export function testPeerId(): Uint8Array {
  const id = new TextEncoder().encode("-TEST01-000000000000");
  crypto.getRandomValues(id.subarray(8));
  return id;
}

/** The metainfo the swarm's seeder published to its tracker. */
export async function metainfoOf(swarm: Swarm): Promise<Metainfo> {
  return await fromInfo((await new TrackerClient(swarm.trackerUrl).getMetainfo()).info);
}

/** How a {@linkcode FakeSeeder} lies; see the module doc. */
export type FakeBehaviour = "corrupt" | "stalled";

/** A seeder in the test process that claims every piece and misbehaves; see the module doc. */
export class FakeSeeder {
  /** Requests received. */
  requests = 0;
  /** Blocks sent (all corrupt; none when stalled). */
  blocks = 0;
  /** Connections the other side closed (or reset). */
  dropped = 0;
  /** `unchoke` messages received. */
  unchokes = 0;
  /** `choke` messages received after an `unchoke` on the same connection. */
  chokesAfterUnchoke = 0;
  readonly #listener = Deno.listen({ hostname: HOST, port: 0 });
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks: Promise<void>[] = [];
  readonly #accepting: Promise<void>;
  readonly #client: TrackerClient;
  readonly #peerId = testPeerId();
  #reporting?: ReturnType<typeof setInterval>;
  #token = "";
  #closing = false;

  /** Starts listening at once; peers learn of it with {@linkcode FakeSeeder.register}. */
  constructor(
    readonly meta: Metainfo,
    readonly original: Uint8Array,
    trackerUrl: string,
    readonly behaviour: FakeBehaviour,
  ) {
    this.#client = new TrackerClient(trackerUrl);
    this.#accepting = this.#accept();
  }

  /** The port it listens on. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** `host:port`, the name the tracker (and so every real peer's log) gives it. */
  get id(): string {
    return `${HOST}:${this.port}`;
  }

  /** Registers as a seeder and keeps reporting a full bitfield so the tracker keeps it. */
  async register(): Promise<void> {
    const r = await this.#client.register({
      host: HOST,
      port: this.port,
      peerId: toHex(this.#peerId),
      role: "seeder",
    });
    this.#token = r.token;
    const full = Bitfield.full(this.meta.pieceCount).toBytes();
    await this.#client.reportProgress(this.#token, full, 0, 0);
    // The tracker forgets a peer silent for 3 intervals (1 s each in the tests).
    this.#reporting = setInterval(() => {
      this.#client.reportProgress(this.#token, full, this.blocks * 16384, 0).catch(() => {});
    }, 500);
  }

  /** Leaves the tracker, closes every connection and waits for the handlers. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#reporting);
    if (this.#token) await this.#client.leave(this.#token).catch(() => {});
    this.#listener.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch {
        // Closed by its handler.
      }
    }
    await this.#accepting;
    await Promise.all(this.#tasks);
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        this.#tasks.push(this.#serve(conn).finally(() => this.#conns.delete(conn)));
      }
    } catch {
      // Listener closed.
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const decoder = new WireDecoder({ handshake: true });
    const buf = new Uint8Array(64 * 1024);
    const out: Uint8Array[] = [];
    let unchoked = false;
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        decoder.push(buf.subarray(0, n), (m) => {
          if (m.type === "handshake") {
            out.push(encodeHandshake(this.meta.infoHash, this.#peerId));
            const bitfield = Bitfield.full(this.meta.pieceCount).toBytes();
            out.push(encodeMessage({ type: "bitfield", bitfield }));
            out.push(encodeMessage({ type: "unchoke" }));
            if (this.behaviour === "stalled") out.push(encodeMessage({ type: "interested" }));
          } else if (m.type === "unchoke") {
            this.unchokes++;
            unchoked = true;
          } else if (m.type === "choke") {
            if (unchoked) this.chokesAfterUnchoke++;
            unchoked = false;
          } else if (m.type === "request") {
            this.requests++;
            if (this.behaviour === "stalled") return;
            const at = m.index * this.meta.pieceLength + m.begin;
            const block = this.original.slice(at, at + m.length);
            block[0] ^= 0xff;
            this.blocks++;
            out.push(encodeMessage({ type: "piece", index: m.index, begin: m.begin, block }));
          }
        });
        if (out.length > 0) {
          const bytes = concat(out.splice(0));
          let off = 0;
          while (off < bytes.length) off += await conn.write(bytes.subarray(off));
        }
      }
    } catch {
      // Reset by the leecher, or closed by close().
    } finally {
      if (!this.#closing) this.dropped++;
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}
