/**
 * Tests for `lib/registry.ts` with a fake clock: registration and its checks, tokens,
 * publication and conflicts, progress reports, expiry, leaving, re-registration and a leecher
 * turning into a seeder.
 *
 * @example
 * ```sh
 * deno test -P tests/registry_test.ts
 * ```
 * @module
 */

import { Bitfield } from "../lib/bitfield.ts";
import { makeMetainfo, type Metainfo } from "../lib/metainfo.ts";
import {
  type FaultCodeValue,
  Registry,
  RegistryError,
  type RegistryEvent,
} from "../lib/registry.ts";
import { FaultCode, type RegisterParams, type Role } from "../lib/tracker_api.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "./assert.ts";

/** A registry on a hand-driven clock that records its events. */
function setup(interval = 2) {
  const clock = { now: 1_000_000 };
  const events: RegistryEvent[] = [];
  const registry = new Registry({
    now: () => clock.now,
    interval,
    onEvent: (e) => events.push(e),
  });
  return { clock, events, registry };
}

function params(port: number, role: Role = "leecher", host = "localhost"): RegisterParams {
  return { host, port, peerId: port.toString(16).padStart(40, "0"), role };
}

/** Metainfo for a file of `pieceCount` 16-byte pieces (the last one shorter); `salt` changes it. */
function meta(pieceCount: number, salt = 0): Promise<Metainfo> {
  const pieces = new Uint8Array(pieceCount * 20).fill(salt);
  return makeMetainfo(`file${salt}.iso`, pieceCount * 16 - 5, 16, pieces);
}

function bits(size: number, set: number[]): Uint8Array {
  const bf = new Bitfield(size);
  for (const i of set) bf.set(i);
  return bf.toBytes();
}

function code(e: unknown): FaultCodeValue | undefined {
  return e instanceof RegistryError ? e.code : undefined;
}

function throwsCode(fn: () => unknown, expected: FaultCodeValue, what: string): RegistryError {
  const e = assertThrows(fn, RegistryError);
  assertEquals(e.code, expected, `${what}: ${e.message}`);
  return e;
}

Deno.test("registry: register issues a token and records the peer", () => {
  const { clock, events, registry } = setup();
  const r = registry.register(params(9000, "seeder"), "127.0.0.1");
  assert(/^[0-9a-f]{32}$/.test(r.token), `token ${r.token}`);
  assertEquals({ ...r, token: "" }, {
    token: "",
    id: "localhost:9000",
    address: "127.0.0.1",
    interval: 2,
  });
  const p = registry.peer("localhost:9000")!;
  assertEquals(p.role, "seeder");
  assertEquals(p.port, 9000);
  assertEquals(p.address, "127.0.0.1");
  assertEquals(p.joinedAt, clock.now);
  assertEquals(p.lastSeen, clock.now);
  assertEquals(p.bitfield, undefined, "no bitfield before the piece count is known");
  assertEquals(events, [{
    type: "joined",
    at: clock.now,
    id: "localhost:9000",
    role: "seeder",
    address: "127.0.0.1",
    replaced: false,
  }]);
  const other = registry.register(params(9001), "127.0.0.1");
  assert(other.token !== r.token, "tokens differ");
  assertEquals(registry.size, 2);
});

Deno.test("registry: register refuses bad parameters", () => {
  const good = params(9000);
  const cases: [string, RegisterParams][] = [
    ["empty host", { ...good, host: "" }],
    ["host with a space", { ...good, host: "a b" }],
    ["host with an escape sequence", { ...good, host: "\x1b[2Jevil" }],
    ["host too long", { ...good, host: "a".repeat(254) }],
    ["port 0", { ...good, port: 0 }],
    ["port 65536", { ...good, port: 65536 }],
    ["fractional port", { ...good, port: 9000.5 }],
    ["short peer id", { ...good, peerId: "abcd" }],
    ["non-hex peer id", { ...good, peerId: "z".repeat(40) }],
    ["unknown role", { ...good, role: "boss" as Role }],
  ];
  for (const [what, p] of cases) {
    const { registry } = setup();
    throwsCode(() => registry.register(p, "127.0.0.1"), FaultCode.badParams, what);
    assertEquals(registry.size, 0, what);
  }
});

Deno.test("registry: every token-bearing call refuses unknown tokens", async () => {
  const { registry } = setup();
  registry.register(params(9000, "seeder"), "127.0.0.1");
  const m = await meta(4);
  const tokens = ["", "nope", "0".repeat(32), "A".repeat(32), "0".repeat(64)];
  for (const token of tokens) {
    throwsCode(() => registry.reportProgress(token, new Uint8Array(), 0, 0), 2, `report ${token}`);
    throwsCode(() => registry.listPeers(token), FaultCode.unknownToken, `listPeers ${token}`);
    throwsCode(() => registry.leave(token), FaultCode.unknownToken, `leave ${token}`);
    const e = await assertRejects(() => registry.publish(token, m.info), RegistryError);
    assertEquals(e.code, FaultCode.unknownToken, `publish ${token}`);
  }
  assertEquals(registry.size, 1);
});

Deno.test("registry: publication, republication and conflicts", async () => {
  const { registry, events } = setup();
  const seeder = registry.register(params(9000, "seeder"), "127.0.0.1");
  const seeder2 = registry.register(params(9002, "seeder"), "127.0.0.1");
  const leecher = registry.register(params(9001), "127.0.0.1");
  const m = await meta(10);
  throwsCode(() => registry.getMetainfo(), FaultCode.notPublished, "before publication");

  const cases: [string, string, Uint8Array, FaultCodeValue | "ok"][] = [
    ["garbage is not an info dict", seeder.token, new Uint8Array([1, 2, 3]), FaultCode.badParams],
    ["first publication", seeder.token, m.info, "ok"],
    ["same info again", seeder.token, m.info, "ok"],
    ["a leecher started from the same .torrent", leecher.token, m.info, "ok"],
    ["same info from another seeder", seeder2.token, m.info, "ok"],
    ["a different file", seeder2.token, (await meta(10, 7)).info, FaultCode.conflict],
  ];
  for (const [what, token, info, expected] of cases) {
    try {
      const r = await registry.publish(token, info);
      assertEquals(expected, "ok", what);
      assertEquals(r.infoHash, m.infoHashHex, what);
    } catch (e) {
      assertEquals(code(e), expected, `${what}: ${e}`);
    }
  }
  const got = registry.getMetainfo();
  assertEquals(got, { info: m.info, infoHash: m.infoHashHex });
  assertEquals(registry.published?.pieceCount, 10);
  assertEquals(events.filter((e) => e.type === "published").length, 1, "published once");
});

Deno.test("registry: progress reports are checked against the piece count", async () => {
  const { registry } = setup();
  const seeder = registry.register(params(9000, "seeder"), "127.0.0.1");
  const leecher = registry.register(params(9001), "127.0.0.1");
  await registry.publish(seeder.token, (await meta(10)).info);
  const cases: [string, Uint8Array, number, number, FaultCodeValue | number][] = [
    ["two pieces", bits(10, [0, 9]), 0, 100, 2],
    ["empty means no change", new Uint8Array(), 0, 200, 2],
    ["too short", new Uint8Array(1), 0, 0, FaultCode.badParams],
    ["too long", new Uint8Array(3), 0, 0, FaultCode.badParams],
    ["spare bit set", Uint8Array.from([0, 0x01]), 0, 0, FaultCode.badParams],
    ["negative upload", bits(10, []), -1, 0, FaultCode.badParams],
    ["fractional download", bits(10, []), 0, 1.5, FaultCode.badParams],
    ["NaN upload", bits(10, []), NaN, 0, FaultCode.badParams],
    ["beyond 2^53", bits(10, []), 2 ** 53, 0, FaultCode.badParams],
    ["five pieces", bits(10, [0, 1, 2, 3, 4]), 10, 500, 5],
  ];
  for (const [what, bitfield, up, down, expected] of cases) {
    try {
      assertEquals(registry.reportProgress(leecher.token, bitfield, up, down), { interval: 2 });
      assertEquals(registry.peer("localhost:9001")!.pieces, expected, what);
    } catch (e) {
      assertEquals(code(e), expected, `${what}: ${e}`);
      if (e instanceof RegistryError) {
        assert(e.message.includes("10 pieces") || /bytes/.test(e.message), e.message);
      }
    }
  }
  assertEquals(registry.peer("localhost:9001")!.downloaded, 500);
});

Deno.test("registry: bitfields reported before publication are checked once it happens", async () => {
  const { registry, events } = setup();
  const seeder = registry.register(params(9000, "seeder"), "127.0.0.1");
  const good = registry.register(params(9001), "127.0.0.1");
  const bad = registry.register(params(9002), "127.0.0.1");
  const full = registry.register(params(9003), "127.0.0.1");
  registry.reportProgress(good.token, bits(10, [1, 2, 3]), 0, 0);
  registry.reportProgress(bad.token, new Uint8Array(5), 0, 0); // wrong length for 10 pieces
  registry.reportProgress(full.token, bits(10, [...Array(10).keys()]), 0, 0);
  throwsCode(
    () => registry.reportProgress(good.token, new Uint8Array(200_000), 0, 0),
    FaultCode.badParams,
    "larger than any file",
  );
  assertEquals(registry.peer("localhost:9001")!.pieces, 0, "unknown until published");

  await registry.publish(seeder.token, (await meta(10)).info);
  assertEquals(registry.peer("localhost:9000")!.pieces, 10, "a seeder holds everything");
  assertEquals(registry.peer("localhost:9001")!.pieces, 3);
  assertEquals(registry.peer("localhost:9002")!.pieces, 0, "a bad early bitfield is dropped");
  assertEquals(registry.peer("localhost:9003")!.role, "seeder", "complete early → seeder");
  assert(events.some((e) => e.type === "complete" && e.id === "localhost:9003"));
  throwsCode(
    () => registry.reportProgress(bad.token, new Uint8Array(5), 0, 0),
    FaultCode.badParams,
    "the same bad bitfield is refused now",
  );
});

Deno.test("registry: silent peers expire after three intervals", async () => {
  const { clock, registry, events } = setup(2);
  const seeder = registry.register(params(9000, "seeder"), "127.0.0.1");
  await registry.publish(seeder.token, (await meta(4)).info);
  const leecher = registry.register(params(9001), "127.0.0.1");
  const steps: [string, number, () => void, string[], number][] = [
    ["nothing yet", 5_000, () => {}, [], 2],
    [
      "seeder reports at 5 s",
      0,
      () => registry.reportProgress(seeder.token, new Uint8Array(), 0, 0),
      [],
      2,
    ],
    ["exactly 6 s is not over", 1_000, () => {}, [], 2],
    ["the leecher is over 6 s", 1, () => {}, ["localhost:9001"], 1],
    ["the seeder is not (exactly 6 s)", 4_999, () => {}, [], 1],
    ["now the seeder is", 1, () => {}, ["localhost:9000"], 0],
  ];
  for (const [what, advance, act, gone, left] of steps) {
    clock.now += advance;
    act();
    assertEquals(registry.expire(), gone, what);
    assertEquals(registry.size, left, what);
  }
  throwsCode(() => registry.listPeers(leecher.token), FaultCode.unknownToken, "expired token");
  assertEquals(registry.published, undefined, "an empty swarm forgets its file");
  assert(
    events.some((e) => e.type === "expired" && e.id === "localhost:9001" && e.silentMs === 6001),
  );
  assert(events.some((e) => e.type === "reset"));
  throwsCode(() => registry.getMetainfo(), FaultCode.notPublished, "after reset");
});

Deno.test("registry: listPeers and publish keep a peer alive too", () => {
  const { clock, registry } = setup(1);
  const a = registry.register(params(9000), "127.0.0.1");
  registry.register(params(9001), "127.0.0.1");
  clock.now += 2_500;
  registry.listPeers(a.token);
  clock.now += 1_000;
  assertEquals(registry.expire(), ["localhost:9001"]);
});

Deno.test("registry: leave removes the peer and its token", () => {
  const { registry, events } = setup();
  const a = registry.register(params(9000), "127.0.0.1");
  const b = registry.register(params(9001), "127.0.0.1");
  registry.leave(a.token);
  assertEquals(registry.size, 1);
  assertEquals(registry.peer("localhost:9000"), undefined);
  throwsCode(() => registry.leave(a.token), FaultCode.unknownToken, "second leave");
  assertEquals(registry.listPeers(b.token), []);
  assert(events.some((e) => e.type === "left" && e.id === "localhost:9000"));
});

Deno.test("registry: re-registering host:port replaces the old entry", async () => {
  const { clock, registry, events } = setup();
  const seeder = registry.register(params(9000, "seeder"), "127.0.0.1");
  await registry.publish(seeder.token, (await meta(8)).info);
  const old = registry.register(params(9001), "127.0.0.1");
  registry.reportProgress(old.token, bits(8, [0, 1]), 0, 0);
  clock.now += 500;
  const again = registry.register({ ...params(9001), peerId: "f".repeat(40) }, "10.0.0.2");
  assertEquals(registry.size, 2);
  throwsCode(() => registry.listPeers(old.token), FaultCode.unknownToken, "old token");
  const p = registry.peer("localhost:9001")!;
  assertEquals([p.peerId, p.address, p.pieces, p.joinedAt], [
    "f".repeat(40),
    "10.0.0.2",
    0,
    clock.now,
  ]);
  assertEquals(registry.listPeers(seeder.token).map((x) => x.peerId), ["f".repeat(40)]);
  assertEquals(events.at(-1)?.type === "joined" && events.at(-1), {
    type: "joined",
    at: clock.now,
    id: "localhost:9001",
    role: "leecher",
    address: "10.0.0.2",
    replaced: true,
  });
  // The same port on another host is another peer.
  registry.register(params(9001, "leecher", "127.0.0.1"), "127.0.0.1");
  assertEquals(registry.size, 3);
  assert(again.token !== old.token);
});

Deno.test("registry: a leecher that completes becomes a seeder", async () => {
  const { clock, registry, events } = setup();
  const seeder = registry.register(params(9000, "seeder"), "127.0.0.1");
  await registry.publish(seeder.token, (await meta(9)).info);
  const joined = clock.now;
  const leecher = registry.register(params(9001), "127.0.0.1");
  registry.reportProgress(leecher.token, bits(9, [0, 1, 2, 3, 4, 5, 6, 7]), 0, 0);
  assertEquals(registry.peer("localhost:9001")!.role, "leecher", "8 of 9 is not complete");
  clock.now += 12_345;
  registry.reportProgress(leecher.token, bits(9, [...Array(9).keys()]), 0, 9 * 16);
  const p = registry.peer("localhost:9001")!;
  assertEquals([p.role, p.completedAt, p.pieces], ["seeder", clock.now, 9]);
  assertEquals(events.at(-1), {
    type: "complete",
    at: clock.now,
    id: "localhost:9001",
    elapsedMs: clock.now - joined,
  });
  // A seeder from the start has no completion time.
  assertEquals(registry.peer("localhost:9000")!.completedAt, undefined);
});

Deno.test("registry: listPeers shows the others in join order with known bitfields", async () => {
  const { registry } = setup();
  const seeder = registry.register(params(9000, "seeder"), "127.0.0.1");
  const a = registry.register(params(9001), "127.0.0.2");
  const b = registry.register(params(9002), "127.0.0.3");
  assertEquals(registry.listPeers(a.token).map((p) => [p.id, p.pieces, p.bitfield.length]), [
    ["localhost:9000", 0, 0],
    ["localhost:9002", 0, 0],
  ], "nothing known before publication");
  await registry.publish(seeder.token, (await meta(10)).info);
  registry.reportProgress(b.token, bits(10, [3]), 0, 0);
  assertEquals(registry.listPeers(a.token), [
    {
      id: "localhost:9000",
      address: "127.0.0.1",
      port: 9000,
      peerId: params(9000).peerId,
      role: "seeder",
      pieces: 10,
      bitfield: Uint8Array.from([0xff, 0xc0]),
    },
    {
      id: "localhost:9002",
      address: "127.0.0.3",
      port: 9002,
      peerId: params(9002).peerId,
      role: "leecher",
      pieces: 1,
      bitfield: bits(10, [3]),
    },
  ]);
  assertEquals(
    registry.listPeers(seeder.token).find((p) => p.id === "localhost:9001")?.bitfield,
    new Uint8Array(0),
    "a leecher that never reported has an empty bitfield",
  );
});

Deno.test("registry: snapshot lists peers in join order with progress and rates", async () => {
  const { clock, registry } = setup(2);
  const start = clock.now;
  const seeder = registry.register(params(9000, "seeder"), "127.0.0.1");
  const l = registry.register(params(9001), "127.0.0.1");
  const empty = registry.snapshot();
  assertEquals([empty.metainfo, empty.peers.map((p) => [p.pieces, p.pieceCount, p.percent])], [
    undefined,
    [[0, 0, 0], [0, 0, 0]],
  ]);
  await registry.publish(seeder.token, (await meta(4)).info);
  registry.reportProgress(l.token, bits(4, [0]), 0, 1000);
  clock.now += 2000;
  registry.reportProgress(l.token, bits(4, [0, 1]), 500, 5000);
  const s = registry.snapshot();
  assertEquals(s.uptimeMs, 2000);
  assertEquals(s.now, start + 2000);
  assertEquals(s.metainfo?.name, "file0.iso");
  assertEquals(
    s.peers.map((
      p,
    ) => [p.id, p.role, p.pieces, p.pieceCount, p.percent, p.downloadRate, p.uploadRate]),
    [
      ["localhost:9000", "seeder", 4, 4, 100, 0, 0],
      ["localhost:9001", "leecher", 2, 4, 50, 2000, 250],
    ],
  );
  clock.now += 4001;
  assertEquals(registry.snapshot().peers[1].downloadRate, 0, "a silent peer's rate is stale");
});

Deno.test("registry: the peer limit holds, but a restart still fits", () => {
  const registry = new Registry({ now: () => 0, maxPeers: 2 });
  registry.register(params(9000), "127.0.0.1");
  registry.register(params(9001), "127.0.0.1");
  throwsCode(() => registry.register(params(9002), "127.0.0.1"), FaultCode.badParams, "full");
  registry.register(params(9001), "127.0.0.1");
  assertEquals(registry.size, 2);
});

Deno.test("registry: a non-positive interval is refused", () => {
  for (const interval of [0, -1, NaN, Infinity]) {
    assertThrows(() => new Registry({ interval }), RangeError);
  }
});
