/**
 * Tests for the HTTP tracker protocol of real BitTorrent clients: `lib/announce.ts` (query
 * parsing with bytewise percent-decoding, bencoded answers in compact and dictionary form,
 * failures and scrapes), `Registry.announce`/`Registry.scrape` on a fake clock (who is returned
 * to whom, `stopped`, `numwant`, completions), and the `/announce` and `/scrape` routes of
 * `lib/http_tracker.ts` called in-process (the address comes from the connection, not `ip=`).
 *
 * @example
 * ```sh
 * deno test -P tests/announce_test.ts
 * ```
 * @module
 */

import {
  AnnounceError,
  type AnnounceParams,
  encodeAnnounceResponse,
  encodeFailure,
  encodeScrapeResponse,
  MAX_NUMWANT,
  MAX_QUERY_LENGTH,
  parseAnnounce,
  parseQuery,
  parseScrape,
} from "../lib/announce.ts";
import { type BDict, type BValue, decode } from "../lib/bencode.ts";
import { announceRoutes } from "../lib/http_tracker.ts";
import { makeMetainfo, type Metainfo } from "../lib/metainfo.ts";
import { Registry, RegistryError, type RegistryEvent } from "../lib/registry.ts";
import { FaultCode } from "../lib/tracker_api.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";

const te = new TextEncoder();
const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);
const bytesOf = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Percent-encodes every byte but the unreserved characters, as clients do. */
function pct(bytes: Uint8Array, lower = false): string {
  let out = "";
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9.\-_~]/.test(c)) out += c;
    else {
      const hex = b.toString(16).padStart(2, "0");
      out += "%" + (lower ? hex : hex.toUpperCase());
    }
  }
  return out;
}

/** 20 bytes that cover the awkward cases: NUL, `%`, `&`, `=`, `+`, space, high bytes. */
const BINARY_HASH = Uint8Array.from([
  0x00,
  0xff,
  0x25,
  0x26,
  0x3d,
  0x2b,
  0x20,
  0x80,
  0x7f,
  0x41,
  0x7e,
  0x2e,
  0x0a,
  0x0d,
  0xc3,
  0xa9,
  0xe2,
  0x82,
  0xac,
  0x3f,
]);
const LT_ID = te.encode("-LT2080-\x01\x02abcdefghij");

/** A query string from fields; byte arrays are percent-encoded. */
function query(fields: Record<string, string | number | Uint8Array | undefined>): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v instanceof Uint8Array ? pct(v) : String(v)}`)
    .join("&");
}

/** A valid announce's fields for `infoHash`, peer id from `n`, on `port`. */
function fields(
  infoHash: Uint8Array,
  n: number,
  port: number,
  extra: Record<string, string | number | Uint8Array | undefined> = {},
): Record<string, string | number | Uint8Array | undefined> {
  return {
    info_hash: infoHash,
    peer_id: peerId(n),
    port,
    uploaded: 0,
    downloaded: 0,
    left: 100,
    compact: 1,
    ...extra,
  };
}

/** A libtorrent-style peer id numbered `n`. */
function peerId(n: number): Uint8Array {
  return te.encode(`-LT2080-${String(n).padStart(12, "0")}`);
}

function asDict(v: BValue): BDict {
  assert(typeof v === "object" && !(v instanceof Uint8Array) && !Array.isArray(v), "a dict");
  return v;
}

function text(v: BValue | undefined): string {
  assert(v instanceof Uint8Array, `a byte string: ${Deno.inspect(v)}`);
  return new TextDecoder().decode(v);
}

/** Compact IPv4 entries → `ip:port` strings. */
function compactPeers(v: BValue | undefined): string[] {
  assert(v instanceof Uint8Array && v.length % 6 === 0, `compact peers: ${Deno.inspect(v)}`);
  const out: string[] = [];
  for (let i = 0; i < v.length; i += 6) {
    out.push(`${v.subarray(i, i + 4).join(".")}:${(v[i + 4] << 8) | v[i + 5]}`);
  }
  return out;
}

/** A registry on a fake clock with a published 10-piece file of 1000 bytes. */
async function setup(): Promise<
  { registry: Registry; meta: Metainfo; clock: { now: number }; events: RegistryEvent[] }
> {
  const clock = { now: 5_000_000 };
  const events: RegistryEvent[] = [];
  const registry = new Registry({ now: () => clock.now, onEvent: (e) => events.push(e) });
  const meta = await makeMetainfo("file.iso", 1000, 100, new Uint8Array(200).fill(7));
  await registry.preload(meta.info);
  return { registry, meta, clock, events };
}

/** Parses an announce for `meta` with the given overrides. */
function announceParams(
  meta: Metainfo,
  n: number,
  port: number,
  extra: Record<string, string | number | Uint8Array | undefined> = {},
): AnnounceParams {
  return parseAnnounce(query(fields(meta.infoHash, n, port, extra)));
}

// ---------------------------------------------------------------------------------------------
// Parsing

Deno.test("announce: info_hash and peer_id are percent-decoded byte for byte", () => {
  for (const lower of [false, true]) {
    const q = `?info_hash=${pct(BINARY_HASH, lower)}&peer_id=${pct(LT_ID, lower)}&port=6881` +
      "&uploaded=1&downloaded=2&left=3";
    const a = parseAnnounce(q);
    assertEquals(a.infoHash, BINARY_HASH, lower ? "lower-case hex" : "upper-case hex");
    assertEquals(a.peerId, LT_ID);
    assertEquals(
      { ...a, infoHash: undefined, peerId: undefined },
      {
        infoHash: undefined,
        peerId: undefined,
        port: 6881,
        uploaded: 1,
        downloaded: 2,
        left: 3,
        event: "empty",
        numwant: 50,
        compact: true,
        noPeerId: false,
      },
      "defaults",
    );
  }
  // Every byte value survives, and `+` is a space as in any query string.
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assertEquals(parseQuery(`x=${pct(all)}`).get("x")![0], all);
  assertEquals(parseQuery("x=a+b%2Bc").get("x")![0], te.encode("a b+c"));
  // Repeated keys keep every value in order (scrape's info_hash list).
  assertEquals(parseQuery("k=1&k=2&&flag").get("k"), [te.encode("1"), te.encode("2")]);
  assertEquals(parseQuery("k=1&k=2&&flag").get("flag"), [new Uint8Array()]);
});

Deno.test("announce: events, compact, no_peer_id and numwant are read; numwant is capped", () => {
  const h = BINARY_HASH;
  const a = (extra: Record<string, string | number | undefined>) =>
    parseAnnounce(query(fields(h, 1, 6881, extra)));
  for (const event of ["started", "completed", "stopped"] as const) {
    assertEquals(a({ event }).event, event);
  }
  assertEquals(a({ event: "" }).event, "empty");
  assertEquals(a({ compact: 0 }).compact, false);
  assertEquals(a({ compact: undefined }).compact, true, "compact unless asked otherwise");
  assertEquals(a({ no_peer_id: 1 }).noPeerId, true);
  assertEquals(a({ numwant: 0 }).numwant, 0);
  assertEquals(a({ numwant: 7 }).numwant, 7);
  assertEquals(a({ numwant: 100000 }).numwant, MAX_NUMWANT);
  // Extra keys real clients send are ignored, `ip` included (see the route test).
  const b = a({ key: "abc", supportcrypto: 1, ip: "6.6.6.6", trackerid: "x", corrupt: 0 });
  assertEquals(b.port, 6881);
});

Deno.test("announce: missing, oversized and malformed parameters are AnnounceErrors", () => {
  const h = BINARY_HASH;
  const ok = fields(h, 1, 6881);
  const cases: [string, string, string][] = [
    ["no info_hash", query({ ...ok, info_hash: undefined }), "missing info_hash"],
    ["no peer_id", query({ ...ok, peer_id: undefined }), "missing peer_id"],
    ["no port", query({ ...ok, port: undefined }), "missing port"],
    ["no left", query({ ...ok, left: undefined }), "missing left"],
    ["19-byte info_hash", query({ ...ok, info_hash: h.subarray(1) }), "info_hash must be 20"],
    ["21-byte info_hash", query({ ...ok, info_hash: new Uint8Array(21) }), "must be 20 bytes"],
    ["19-byte peer_id", query({ ...ok, peer_id: new Uint8Array(19) }), "peer_id must be 20"],
    ["port 0", query({ ...ok, port: 0 }), "port must be from 1 to 65535"],
    ["port 65536", query({ ...ok, port: 65536 }), "port must be from 1 to 65535"],
    ["port text", query({ ...ok, port: "http" }), "port must be a whole number"],
    ["negative left", query({ ...ok, left: -1 }), "left must be a whole number"],
    ["fractional uploaded", query({ ...ok, uploaded: "1.5" }), "uploaded must be a whole"],
    ["17 digits", query({ ...ok, downloaded: "1".repeat(17) }), "must be a whole number"],
    ["beyond 2^53", query({ ...ok, left: "9007199254740993" }), "left is too large"],
    ["negative numwant", query({ ...ok, numwant: -1 }), "numwant must be a whole number"],
    ["unknown event", query({ ...ok, event: "paused" }), 'unknown event "paused"'],
    ["port twice", query(ok) + "&port=6882", "port given more than once"],
    ["info_hash twice", query(ok) + `&info_hash=${pct(h)}`, "info_hash given more than once"],
    ["bad escape", query(ok) + "&key=%zz", "malformed percent-encoding"],
    ["cut escape", query(ok) + "&key=%4", "malformed percent-encoding"],
    ["raw non-ASCII", query(ok) + "&key=é", "must be ASCII"],
    ["too long", query(ok) + "&pad=" + "x".repeat(MAX_QUERY_LENGTH), "longer than 4096"],
    ["flooded key", query(ok) + "&k=1".repeat(65), "too many k parameters"],
    ["non-UTF-8 event", query({ ...ok, event: Uint8Array.of(0xff, 0xfe) }), "unknown event"],
    ["NUL as port", query({ ...ok, port: Uint8Array.of(0) }), "port must be a whole number"],
    ["empty port", query({ ...ok, port: "" }), "port must be a whole number"],
    ["huge port", query({ ...ok, port: "99999999999" }), "port must be from 1 to 65535"],
    ["negative numwant", query({ ...ok, numwant: "-99999999999" }), "numwant must be a whole"],
    ["cut info_hash", query({ ...ok, info_hash: undefined }) + "&info_hash=%12%3", "malformed"],
    ["giant info_hash", query({ ...ok, info_hash: new Uint8Array(1000) }), "must be 20 bytes"],
  ];
  for (const [what, q, msg] of cases) {
    const e = assertThrows(() => parseAnnounce(q), AnnounceError, msg);
    assert(e.message.length < 200, `${what}: a short reason`);
  }
  assertThrows(() => parseScrape(`info_hash=${pct(h.subarray(2))}`), AnnounceError, "20 bytes");
  assertThrows(() => parseScrape("info_hash=%g0"), AnnounceError, "percent-encoding");
});

Deno.test("scrape: info_hash parameters are decoded in order; none means every torrent", () => {
  const other = new Uint8Array(20).fill(0x25);
  assertEquals(parseScrape(`?info_hash=${pct(BINARY_HASH)}&info_hash=${pct(other)}`), [
    BINARY_HASH,
    other,
  ]);
  assertEquals(parseScrape(""), []);
  assertEquals(parseScrape("?"), []);
});

// ---------------------------------------------------------------------------------------------
// Encoding

Deno.test("announce: compact answers hold 6-byte IPv4 entries and 18-byte peers6", () => {
  const id = new Uint8Array(20);
  const body = encodeAnnounceResponse({
    interval: 30,
    complete: 1,
    incomplete: 2,
    peers: [
      { ip: "1.2.3.4", port: 258, peerId: id },
      { ip: "::ffff:10.0.0.255", port: 65535, peerId: id },
      { ip: "2001:db8::1", port: 6881, peerId: id },
      { ip: "::1", port: 1, peerId: id },
      { ip: "fe80:0:0:0:1:2:3:4", port: 2, peerId: id },
    ],
  }, true);
  const v4 = [1, 2, 3, 4, 1, 2, 10, 0, 0, 255, 255, 255];
  const v6 = [
    ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1],
    ...[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1],
    ...[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 2],
  ];
  const expected = [
    ...te.encode("d8:completei1e10:incompletei2e8:intervali30e12:min intervali5e5:peers12:"),
    ...v4,
    ...te.encode("6:peers654:"),
    ...v6,
    ...te.encode("e"),
  ];
  assertEquals(body, Uint8Array.from(expected));

  // No IPv6 peers: no peers6 key; no peers at all: an empty string, not a missing key.
  const empty = asDict(decode(encodeAnnounceResponse({
    interval: 2,
    complete: 0,
    incomplete: 0,
    peers: [],
  }, true)));
  assertEquals(empty.peers, new Uint8Array());
  assert(!("peers6" in empty), "no peers6");
  assertEquals(empty["min interval"], 2, "min interval never above interval");
});

Deno.test("announce: the dictionary form lists ip, port and peer id unless no_peer_id", () => {
  const answer = {
    interval: 30,
    complete: 0,
    incomplete: 1,
    peers: [{ ip: "127.0.0.1", port: 6881, peerId: LT_ID }, {
      ip: "::1",
      port: 6882,
      peerId: BINARY_HASH,
    }],
  };
  const withIds = asDict(decode(encodeAnnounceResponse(answer, false)));
  const list = withIds.peers as BValue[];
  assertEquals(list.length, 2);
  const [a, b] = list.map(asDict);
  assertEquals([text(a.ip), a.port, a["peer id"]], ["127.0.0.1", 6881, LT_ID]);
  assertEquals([text(b.ip), b.port, b["peer id"]], ["::1", 6882, BINARY_HASH]);
  assert(!("peers6" in withIds), "the dictionary form has no peers6");

  const bare = asDict(decode(encodeAnnounceResponse(answer, false, true)));
  for (const p of (bare.peers as BValue[]).map(asDict)) {
    assertEquals(Object.keys(p).sort(), ["ip", "port"]);
  }
});

Deno.test("announce: a failure is a bencoded failure reason, UTF-8 counted in bytes", () => {
  assertEquals(latin1(encodeFailure("missing port")), "d14:failure reason12:missing porte");
  const body = encodeFailure('unknown event "é"');
  assertEquals(text(asDict(decode(body))["failure reason"]), 'unknown event "é"');
  assertEquals(latin1(body.subarray(0, 21)), "d14:failure reason18:");
});

Deno.test("scrape: files are keyed by the raw 20-byte info-hashes, sorted by bytes", () => {
  const low = new Uint8Array(20).fill(0x01);
  const body = encodeScrapeResponse([
    { infoHash: BINARY_HASH, complete: 3, incomplete: 4, downloaded: 5 },
    { infoHash: low, complete: 0, incomplete: 1, downloaded: 0 },
  ]);
  // BINARY_HASH starts with 0x00, so it sorts first.
  const expected = "d5:filesd" +
    `20:${latin1(BINARY_HASH)}d8:completei3e10:downloadedi5e10:incompletei4ee` +
    `20:${latin1(low)}d8:completei0e10:downloadedi0e10:incompletei1ee` +
    "ee";
  assertEquals(body, bytesOf(expected));
  assertEquals(latin1(encodeScrapeResponse([])), "d5:filesdee");
});

// ---------------------------------------------------------------------------------------------
// The registry

Deno.test("registry announce: refused before publication, for another torrent or a bad left", async () => {
  const bare = new Registry();
  const m = await makeMetainfo("file.iso", 1000, 100, new Uint8Array(200));
  const e0 = assertThrows(() => bare.announce(announceParams(m, 1, 7000), "127.0.0.1"));
  assert(e0 instanceof RegistryError && /no seeder has published/.test(e0.message), e0.message);
  assertEquals(e0.code, FaultCode.badParams);

  const { registry, meta } = await setup();
  const wrong = parseAnnounce(query(fields(BINARY_HASH, 1, 7000)));
  assertThrows(() => registry.announce(wrong, "127.0.0.1"), RegistryError, "unknown info_hash");
  assertThrows(
    () => registry.announce(announceParams(meta, 1, 7000, { left: 1001 }), "127.0.0.1"),
    RegistryError,
    "left is larger than the file",
  );
  assertEquals(registry.size, 0);
});

Deno.test("registry announce: clients are keyed by address and port and see each other", async () => {
  const { registry, meta, events } = await setup();
  const first = registry.announce(announceParams(meta, 1, 7001, { event: "started" }), "10.0.0.1");
  assertEquals(first.peers, [], "alone");
  assertEquals([first.interval, first.complete, first.incomplete], [30, 0, 1]);
  const second = registry.announce(announceParams(meta, 2, 7002), "10.0.0.2");
  assertEquals(plain(second.peers), [{ ip: "10.0.0.1", port: 7001, peerId: peerId(1) }]);
  // Same address and port again: the same entry (a re-announce), with a new peer id if it
  // changed (a restarted client).
  registry.announce(announceParams(meta, 3, 7001), "10.0.0.1");
  assertEquals(registry.size, 2);
  const third = registry.announce(announceParams(meta, 4, 7003), "::1");
  assertEquals(
    third.peers.map((p) => `${p.ip}:${p.port}:${new TextDecoder().decode(p.peerId)}`).sort(),
    ["10.0.0.1:7001:-LT2080-000000000003", "10.0.0.2:7002:-LT2080-000000000002"],
  );
  const snap = registry.snapshot();
  assertEquals(snap.peers.map((p) => p.id), ["10.0.0.1:7001", "10.0.0.2:7002", "[::1]:7003"]);
  assertEquals(snap.peers.map((p) => p.client), ["libtorrent", "libtorrent", "libtorrent"]);
  // Progress from `left`: 100 of 1000 bytes left is 9 whole pieces of 10.
  registry.announce(announceParams(meta, 2, 7002, { left: 100 }), "10.0.0.2");
  assertEquals(registry.peer("10.0.0.2:7002")?.pieces, 9);
  assertEquals(events.filter((e) => e.type === "joined").length, 3);
});

Deno.test("registry announce: a seeder gets no seeders back; a leecher gets everyone", async () => {
  const { registry, meta } = await setup();
  registry.announce(announceParams(meta, 1, 7001, { left: 0 }), "10.0.0.1");
  registry.announce(announceParams(meta, 2, 7002, { left: 0 }), "10.0.0.2");
  registry.announce(announceParams(meta, 3, 7003, { left: 500 }), "10.0.0.3");
  registry.announce(announceParams(meta, 4, 7004, { left: 1000 }), "10.0.0.4");
  const seeder = registry.announce(announceParams(meta, 1, 7001, { left: 0 }), "10.0.0.1");
  assertEquals(seeder.peers.map((p) => p.port).sort(), [7003, 7004]);
  assertEquals([seeder.complete, seeder.incomplete], [2, 2]);
  const leecher = registry.announce(announceParams(meta, 3, 7003, { left: 500 }), "10.0.0.3");
  assertEquals(leecher.peers.map((p) => p.port).sort(), [7001, 7002, 7004]);
});

Deno.test("registry announce: numwant caps the peers returned", async () => {
  const { registry, meta } = await setup();
  for (let i = 1; i <= 30; i++) {
    registry.announce(announceParams(meta, i, 7000 + i), `10.0.1.${i}`);
  }
  assertEquals(
    registry.announce(announceParams(meta, 1, 7001, { numwant: 5 }), "10.0.1.1").peers
      .length,
    5,
  );
  assertEquals(
    registry.announce(announceParams(meta, 1, 7001, { numwant: 0 }), "10.0.1.1").peers
      .length,
    0,
  );
  const all = registry.announce(announceParams(meta, 1, 7001, { numwant: 999 }), "10.0.1.1");
  assertEquals(all.peers.length, 29, "everyone but the caller, within the cap");
  assert(!all.peers.some((p) => p.port === 7001), "never the caller itself");
  // Default 50, and the cap of 200 holds however many there are.
  const big = new Registry({ maxPeers: 1000 });
  await big.preload(meta.info);
  for (let i = 1; i <= 260; i++) {
    big.announce(announceParams(meta, i, 10000 + i), `10.0.${i >> 8}.${i & 255}`);
  }
  assertEquals(big.announce(announceParams(meta, 1, 10001), "10.0.0.1").peers.length, 50);
  const capped = big.announce(announceParams(meta, 1, 10001, { numwant: 5000 }), "10.0.0.1");
  assertEquals(capped.peers.length, MAX_NUMWANT);
});

Deno.test("registry announce: stopped removes the client; completed counts a download", async () => {
  const { registry, meta, events } = await setup();
  registry.announce(announceParams(meta, 1, 7001, { event: "started" }), "10.0.0.1");
  registry.announce(announceParams(meta, 2, 7002, { event: "started" }), "10.0.0.2");
  assertEquals(registry.scrape()[0], {
    infoHash: meta.infoHash,
    complete: 0,
    incomplete: 2,
    downloaded: 0,
  });
  const done = registry.announce(
    announceParams(meta, 1, 7001, { event: "completed", left: 0 }),
    "10.0.0.1",
  );
  assertEquals([done.complete, done.incomplete], [1, 1]);
  assert(events.some((e) => e.type === "complete" && e.id === "10.0.0.1:7001"), "complete event");
  assertEquals(registry.scrape()[0].downloaded, 1);
  // Announcing complete again does not count twice.
  registry.announce(announceParams(meta, 1, 7001, { left: 0 }), "10.0.0.1");
  assertEquals(registry.scrape()[0].downloaded, 1);

  const stopped = registry.announce(
    announceParams(meta, 2, 7002, { event: "stopped" }),
    "10.0.0.2",
  );
  assertEquals(stopped.peers, [], "no peers for a client that leaves");
  assertEquals(registry.peer("10.0.0.2:7002"), undefined);
  assertEquals([stopped.complete, stopped.incomplete], [1, 0]);
  assert(events.some((e) => e.type === "left" && e.id === "10.0.0.2:7002"), "left event");
  // The others no longer get it.
  assertEquals(
    registry.announce(announceParams(meta, 3, 7003), "10.0.0.3").peers.map((p) => p.port),
    [
      7001,
    ],
  );
  // Stopping twice, or a client never seen, is harmless.
  registry.announce(announceParams(meta, 2, 7002, { event: "stopped" }), "10.0.0.2");
  registry.announce(announceParams(meta, 9, 7009, { event: "stopped" }), "10.0.0.9");
  assertEquals(registry.size, 2);
  // The preloaded torrent stays published when the swarm empties.
  for (const [n, port] of [[1, 7001], [3, 7003]]) {
    registry.announce(announceParams(meta, n, port, { event: "stopped" }), `10.0.0.${n}`);
  }
  assertEquals(registry.size, 0);
  assertEquals(registry.published?.infoHash, meta.infoHashHex);
});

Deno.test("registry announce: our XML-RPC peers and HTTP clients see each other", async () => {
  const { registry, meta } = await setup();
  const ours = registry.register(
    { host: "127.0.0.1", port: 9000, peerId: "ab".repeat(20), role: "seeder" },
    "127.0.0.1",
  );
  const a = registry.announce(announceParams(meta, 1, 7001), "127.0.0.1");
  assertEquals(plain(a.peers), [
    { ip: "127.0.0.1", port: 9000, peerId: new Uint8Array(20).fill(0xab) },
  ]);
  const listed = registry.listPeers(ours.token);
  assertEquals(listed.map((p) => [p.id, p.address, p.port, p.peerId, p.role]), [
    ["127.0.0.1:7001", "127.0.0.1", 7001, latin1Hex(peerId(1)), "leecher"],
  ]);
  // An HTTP client cannot take over (or stop) the entry of one of our peers.
  assertThrows(
    () => registry.announce(announceParams(meta, 2, 9000), "127.0.0.1"),
    RegistryError,
    "already registered over XML-RPC",
  );
  registry.announce(announceParams(meta, 2, 9000, { event: "stopped" }), "127.0.0.1");
  assert(registry.peer("127.0.0.1:9000") !== undefined, "our peer is still there");
});

function latin1Hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------------------------
// The routes

function info(hostname: string): Deno.ServeHandlerInfo<Deno.NetAddr> {
  return {
    remoteAddr: { transport: "tcp", hostname, port: 40000 },
    completed: Promise.resolve(),
  } as Deno.ServeHandlerInfo<Deno.NetAddr>;
}

async function get(
  routes: ReturnType<typeof announceRoutes>,
  path: "/announce" | "/scrape",
  q: string,
  from = "127.0.0.1",
  method = "GET",
): Promise<BDict> {
  const res = await routes[path](new Request(`http://tracker${path}?${q}`, { method }), info(from));
  assertEquals(res.status, 200, "always 200, failures included");
  assertEquals(res.headers.get("content-type"), "text/plain");
  return asDict(decode(new Uint8Array(await res.arrayBuffer())));
}

Deno.test("routes: the address comes from the connection, never from ip=", async () => {
  const { registry, meta } = await setup();
  const routes = announceRoutes(registry);
  await get(
    routes,
    "/announce",
    query(fields(meta.infoHash, 1, 7001, { ip: "6.6.6.6" })),
    "127.0.0.5",
  );
  assertEquals(registry.peer("127.0.0.5:7001")?.address, "127.0.0.5");
  assertEquals(registry.snapshot().peers.map((p) => p.id), ["127.0.0.5:7001"]);
  // A client claiming another's address cannot replace it either.
  await get(
    routes,
    "/announce",
    query(fields(meta.infoHash, 2, 7001, { ip: "127.0.0.5" })),
    "127.0.0.6",
  );
  assertEquals(registry.size, 2);

  const v4 = await get(routes, "/announce", query(fields(meta.infoHash, 3, 7003)), "127.0.0.7");
  assertEquals(compactPeers(v4.peers).sort(), ["127.0.0.5:7001", "127.0.0.6:7001"]);
  // An IPv6 connection is listed in peers6.
  await get(routes, "/announce", query(fields(meta.infoHash, 4, 7004)), "::1");
  const again = await get(routes, "/announce", query(fields(meta.infoHash, 3, 7003)), "127.0.0.7");
  const six = again.peers6;
  assert(six instanceof Uint8Array, "peers6 present");
  assertEquals(six, Uint8Array.from([...new Array(15).fill(0), 1, 7004 >> 8, 7004 & 255]));
  assertEquals(registry.peer("[::1]:7004")?.address, "::1");
  // The dictionary form, with and without peer ids.
  const dict = await get(
    routes,
    "/announce",
    query(fields(meta.infoHash, 3, 7003, { compact: 0 })),
    "127.0.0.7",
  );
  const peers = (dict.peers as BValue[]).map(asDict);
  assertEquals(peers.map((p) => `${text(p.ip)}:${p.port}`).sort(), [
    "127.0.0.5:7001",
    "127.0.0.6:7001",
    "::1:7004",
  ]);
  assert(peers.every((p) => p["peer id"] instanceof Uint8Array), "with peer ids");
  const noIds = await get(
    routes,
    "/announce",
    query(fields(meta.infoHash, 3, 7003, { compact: 0, no_peer_id: 1 })),
    "127.0.0.7",
  );
  assert((noIds.peers as BValue[]).map(asDict).every((p) => !("peer id" in p)), "no peer ids");
});

Deno.test("routes: bad requests get a failure reason; scrape answers for the torrent", async () => {
  const { registry, meta } = await setup();
  const routes = announceRoutes(registry);
  const failure = async (path: "/announce" | "/scrape", q: string, method = "GET") =>
    text((await get(routes, path, q, "127.0.0.1", method))["failure reason"]);
  assertEquals(await failure("/announce", ""), "missing info_hash");
  assertEquals(
    await failure("/announce", query(fields(BINARY_HASH, 1, 7001))),
    "this tracker serves another torrent (unknown info_hash)",
  );
  assertEquals(
    await failure("/announce", query(fields(meta.infoHash, 1, 7001)), "POST"),
    "announce must be a GET request",
  );
  assertEquals(await failure("/scrape", "info_hash=abc"), "info_hash must be 20 bytes, not 3");
  assertEquals(await failure("/scrape", "", "POST"), "scrape must be a GET request");

  await get(routes, "/announce", query(fields(meta.infoHash, 1, 7001, { left: 0 })), "10.0.0.1");
  await get(routes, "/announce", query(fields(meta.infoHash, 2, 7002)), "10.0.0.2");
  const key = latin1(meta.infoHash);
  for (const q of ["", `info_hash=${pct(meta.infoHash)}`]) {
    const res = await routes["/scrape"](new Request(`http://tracker/scrape?${q}`), info("::1"));
    const body = new Uint8Array(await res.arrayBuffer());
    assertEquals(
      body,
      bytesOf(
        `d5:filesd20:${key}d8:completei1e10:downloadedi0e10:incompletei1eeee`,
      ),
      `scrape ${q || "(all)"}`,
    );
  }
  const none = await routes["/scrape"](
    new Request(`http://tracker/scrape?info_hash=${pct(BINARY_HASH)}`),
    info("::1"),
  );
  assertEquals(latin1(new Uint8Array(await none.arrayBuffer())), "d5:filesdee");
});

/** Announce peers without the registry's cached compact form, for comparison. */
function plain(peers: { ip: string; port: number; peerId: Uint8Array }[]) {
  return peers.map(({ ip, port, peerId }) => ({ ip, port, peerId }));
}
