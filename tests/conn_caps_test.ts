/**
 * Connection caps: the pure decision in `lib/conn_caps.ts`, then the real `peer.ts` holding raw
 * TCP clients in the test process to `--max-peers-per-ip` and `--max-peers` (exactly that many
 * stay open, the rest are closed by the peer), leaving loopback alone by default, and dialling
 * no more peers than its caps allow. After each, a real leecher still downloads an identical
 * copy.
 *
 * @example
 * ```sh
 * deno test -P tests/conn_caps_test.ts
 * ```
 * @module
 */

import { type ConnectionCaps, ipKey, isLoopback, refuseConnection } from "../lib/conn_caps.ts";
import type { Metainfo } from "../lib/metainfo.ts";
import { fromInfo } from "../lib/metainfo.ts";
import { TrackerClient } from "../lib/tracker_client.ts";
import { encodeHandshake, encodeMessage, type Handshake, type Message } from "../lib/wire.ts";
import { WireDecoder } from "../lib/wire.ts";
import { assert, assertEquals, assertStringIncludes, fail } from "./assert.ts";
import {
  assertSameFile,
  HOST,
  LINE_TIMEOUT_MS,
  type Peer,
  receivedFrom,
  Swarm,
} from "./swarm_helpers.ts";

const COMPLETE = /^DOWNLOAD COMPLETE! /;

Deno.test("conn caps: loopback and address keys", () => {
  for (
    const a of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"]
  ) {
    assert(isLoopback(a), `${a} is loopback`);
  }
  for (const a of ["10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "fe80::1", "localhost"]) {
    assert(!isLoopback(a), `${a} is not loopback`);
  }
  assertEquals(ipKey("::ffff:192.0.2.7"), "192.0.2.7");
  assertEquals(ipKey("2001:DB8::1"), "2001:db8::1");
  assertEquals(ipKey("192.0.2.7"), "192.0.2.7");
});

Deno.test("conn caps: which connections are refused and why", () => {
  const caps: ConnectionCaps = { maxPeers: 10, maxPeersPerIp: 3, exemptLoopback: true };
  const cases: [string, ConnectionCaps, string, number, number, string | undefined][] = [
    ["room everywhere", caps, "192.0.2.1", 0, 0, undefined],
    ["just under both caps", caps, "192.0.2.1", 9, 2, undefined],
    ["the address is full", caps, "192.0.2.1", 5, 3, "192.0.2.1 already has 3 connections"],
    ["a mapped address is the same host", caps, "::ffff:192.0.2.1", 5, 3, "192.0.2.1 already"],
    ["the table is full", caps, "192.0.2.1", 10, 0, "already 10 peers connected"],
    ["loopback is exempt by default", caps, "127.0.0.1", 5, 9, undefined],
    ["but not from the total", caps, "127.0.0.1", 10, 9, "--max-peers 10"],
    [
      "an explicit cap holds loopback too",
      { ...caps, exemptLoopback: false },
      "127.0.0.1",
      5,
      3,
      "--max-peers-per-ip 3",
    ],
    [
      "IPv6 loopback likewise",
      { ...caps, exemptLoopback: false },
      "::1",
      0,
      3,
      "::1 already has 3",
    ],
  ];
  for (const [what, c, address, total, sameIp, want] of cases) {
    const got = refuseConnection(c, address, { total, sameIp });
    if (want === undefined) assertEquals(got, undefined, what);
    else assertStringIncludes(got ?? "(allowed)", want, what);
  }
});

/** A raw client in the test process: sends a valid handshake, then reads what the peer says. */
class RawClient {
  readonly received: (Message | Handshake)[] = [];
  readonly #decoder = new WireDecoder({ handshake: true });
  readonly #buf = new Uint8Array(64 * 1024);
  #eof = false;
  #closed = false;

  private constructor(readonly conn: Deno.TcpConn) {}

  /** Connects to 127.0.0.1:`port` and sends a handshake with a fresh peer id. */
  static async open(port: number, infoHash: Uint8Array): Promise<RawClient> {
    const c = new RawClient(await Deno.connect({ hostname: HOST, port }));
    const id = new TextEncoder().encode("-TEST01-000000000000");
    crypto.getRandomValues(id.subarray(8));
    await c.write(encodeHandshake(infoHash, id));
    return c;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /**
   * Reads until a message passes `test` ("got") or the peer closes ("closed"); fails after
   * `timeoutMs`.
   */
  async until(
    test: (m: Message | Handshake) => boolean,
    timeoutMs = LINE_TIMEOUT_MS,
  ): Promise<"got" | "closed"> {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.received.length; seen++) if (test(this.received[seen])) return "got";
      if (this.#eof) return "closed";
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((r) => {
        timer = setTimeout(() => r("timeout"), Math.max(0, deadline - Date.now()));
      });
      try {
        const n = await Promise.race([this.conn.read(this.#buf), timeout]);
        if (n === "timeout") fail(`nothing decisive within ${timeoutMs} ms`);
        if (n === null) this.#eof = true;
        else this.#decoder.push(this.#buf.subarray(0, n), (m) => this.received.push(m));
      } catch (e) {
        if (!(e instanceof Deno.errors.ConnectionReset)) throw e;
        this.#eof = true;
      } finally {
        clearTimeout(timer);
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

async function metainfoOf(swarm: Swarm): Promise<Metainfo> {
  return await fromInfo((await new TrackerClient(swarm.trackerUrl).getMetainfo()).info);
}

/**
 * Opens `n` raw clients to `seeder` one after the other, each with a valid handshake; returns
 * those the seeder kept (they got its bitfield, and an unchoke when they said they were
 * interested) and how many it closed. Every client is closed by `clients` on the way out.
 */
async function hammer(
  seeder: Peer,
  meta: Metainfo,
  n: number,
  clients: RawClient[],
): Promise<{ kept: RawClient[]; closed: number }> {
  for (let i = 0; i < n; i++) clients.push(await RawClient.open(seeder.port, meta.infoHash));
  const outcomes = await Promise.all(clients.map((c) => c.until((m) => m.type === "bitfield")));
  const kept = clients.filter((_, i) => outcomes[i] === "got");
  // Still alive, not merely not closed yet: each kept connection answers.
  for (const c of kept) {
    await c.write(encodeMessage({ type: "interested" }));
    assertEquals(await c.until((m) => m.type === "unchoke"), "got", "a kept client is served");
  }
  for (const [i, c] of clients.entries()) {
    if (outcomes[i] === "closed") {
      assert(!c.received.some((m) => m.type === "bitfield"), "a closed client got no bitfield");
    }
  }
  return { kept, closed: outcomes.filter((o) => o === "closed").length };
}

/** A real leecher downloads a whole, identical copy from the swarm. */
async function leecherStillDownloads(swarm: Swarm): Promise<void> {
  const leecher = swarm.startLeecher(["--quiet"]);
  await leecher.waitForLine(COMPLETE);
  await assertSameFile(swarm.copyPath(leecher.port), swarm.seedPath);
}

Deno.test("conn caps: --max-peers-per-ip 3 keeps 3 connections from 127.0.0.1 and closes the rest", async () => {
  const swarm = await Swarm.create();
  const clients: RawClient[] = [];
  try {
    await swarm.startTracker();
    const seeder = await swarm.startSeeder(undefined, ["--max-peers-per-ip", "3"]);
    const meta = await metainfoOf(swarm);
    const { kept, closed } = await hammer(seeder, meta, 8, clients);
    assertEquals([kept.length, closed], [3, 5], "3 kept, 5 closed");
    // One line for the burst, not one per refused connection.
    const line = await seeder.waitForLine(/^refused a connection from 127\.0\.0\.1: /);
    assertStringIncludes(line, "127.0.0.1 already has 3 connections");
    assertStringIncludes(line, "--max-peers-per-ip 3");
    assertEquals(seeder.lines.filter((l) => l.startsWith("refused a connection")).length, 1);

    for (const c of clients) c.close();
    await leecherStillDownloads(swarm);
  } finally {
    for (const c of clients) c.close();
    await swarm.close();
  }
});

Deno.test("conn caps: --max-peers 4 keeps 4 connections in all and closes the rest", async () => {
  const swarm = await Swarm.create();
  const clients: RawClient[] = [];
  try {
    await swarm.startTracker();
    const seeder = await swarm.startSeeder(undefined, ["--max-peers", "4"]);
    const meta = await metainfoOf(swarm);
    const { kept, closed } = await hammer(seeder, meta, 8, clients);
    assertEquals([kept.length, closed], [4, 4], "4 kept, 4 closed");
    await seeder.waitForLine(/already 4 peers connected, the most allowed \(--max-peers 4\)/);

    for (const c of clients) c.close();
    await leecherStillDownloads(swarm);
  } finally {
    for (const c of clients) c.close();
    await swarm.close();
  }
});

Deno.test("conn caps: by default loopback is not held to the per-address cap", async () => {
  const swarm = await Swarm.create();
  const clients: RawClient[] = [];
  try {
    await swarm.startTracker();
    const seeder = await swarm.startSeeder();
    const meta = await metainfoOf(swarm);
    // Above the default of 8 per address: a local demo swarm has every peer on 127.0.0.1.
    const { kept, closed } = await hammer(seeder, meta, 12, clients);
    assertEquals([kept.length, closed], [12, 0], "all 12 kept");
    assert(!seeder.lines.some((l) => l.startsWith("refused")), "nothing refused");
  } finally {
    for (const c of clients) c.close();
    await swarm.close();
  }
});

Deno.test("conn caps: a leecher dials no more peers than --max-peers-per-ip allows", async () => {
  const swarm = await Swarm.create();
  try {
    await swarm.startTracker();
    await swarm.startSeeder();
    await swarm.startSeeder();
    const leecher = swarm.startLeecher(["--quiet", "--max-peers-per-ip", "1"]);
    await leecher.waitForLine(COMPLETE);
    await assertSameFile(swarm.copyPath(leecher.port), swarm.seedPath);
    await leecher.stop();
    // Both seeders were on the peer list all along; the cap let it dial only one of them.
    const from = receivedFrom(leecher.lines);
    assertEquals(from.size, 1, `received from ${[...from.keys()].join(", ")}`);
  } finally {
    await swarm.close();
  }
});
