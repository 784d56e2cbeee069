/**
 * Tests for `lib/wire.ts`: the byte layout of every message and the handshake, the streaming
 * decoder fed one byte at a time, split at every boundary and in random chunks, and the limits
 * and malformations that must raise {@linkcode WireError}.
 *
 * @example
 * ```sh
 * deno test -P tests/wire_test.ts
 * ```
 * @module
 */

import {
  BLOCK_LENGTH,
  decodeBody,
  encodeHandshake,
  encodeMessage,
  type Handshake,
  HANDSHAKE_LENGTH,
  makePeerId,
  MAX_REQUEST_LENGTH,
  type Message,
  MessageId,
  PROTOCOL,
  WireDecoder,
  WireError,
} from "../lib/wire.ts";
import { concat } from "../lib/bencode.ts";
import { assert, assertEquals, assertNotEquals, assertThrows } from "./assert.ts";
import { mulberry32 } from "./random.ts";

type Out = Message | Handshake;

function bytesOf(n: number, seed: number): Uint8Array {
  const r = mulberry32(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

/** Copies the views a decoder hands out, which are valid only during the callback. */
function own(m: Out): Out {
  if (m.type === "piece") return { ...m, block: m.block.slice() };
  if (m.type === "bitfield") return { ...m, bitfield: m.bitfield.slice() };
  if (m.type === "unknown") return { ...m, payload: m.payload.slice() };
  return m;
}

/** Feeds `chunks` to a fresh decoder and returns what it emitted. */
function decodeAll(chunks: Uint8Array[], handshake: boolean): Out[] {
  const dec = new WireDecoder({ handshake });
  const out: Out[] = [];
  for (const c of chunks) dec.push(c, (m) => out.push(own(m)));
  assertEquals(dec.buffered, 0, "nothing left buffered at the end");
  return out;
}

const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

/** Every message type, with its exact bytes on the wire. */
const VECTORS: [Message, string][] = [
  [{ type: "keep-alive" }, "00000000"],
  [{ type: "choke" }, "0000000100"],
  [{ type: "unchoke" }, "0000000101"],
  [{ type: "interested" }, "0000000102"],
  [{ type: "not interested" }, "0000000103"],
  [{ type: "have", index: 7 }, "000000050400000007"],
  [{ type: "have", index: 0xfffffffe }, "0000000504fffffffe"],
  [{ type: "bitfield", bitfield: Uint8Array.of(0xff, 0x80) }, "0000000305ff80"],
  [{ type: "bitfield", bitfield: new Uint8Array(0) }, "0000000105"],
  [
    { type: "request", index: 1, begin: 16384, length: 16384 },
    "0000000d06000000010000400000004000",
  ],
  [
    { type: "piece", index: 2, begin: 32768, block: Uint8Array.of(0xde, 0xad, 0xbe, 0xef) },
    "0000000d070000000200008000deadbeef",
  ],
  [{ type: "piece", index: 0, begin: 0, block: new Uint8Array(0) }, "00000009070000000000000000"],
  [
    { type: "cancel", index: 3, begin: 0, length: 100 },
    "0000000d08000000030000000000000064",
  ],
  [{ type: "port", port: 6881 }, "00000003091ae1"],
  [{ type: "unknown", id: 20, payload: Uint8Array.of(1, 2, 3) }, "0000000414010203"],
];

Deno.test("wire: message ids are the BEP 3 numbers", () => {
  assertEquals(MessageId, {
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
  });
});

Deno.test("wire: every message type encodes to its known bytes and decodes back", () => {
  for (const [msg, bytes] of VECTORS) {
    const encoded = encodeMessage(msg);
    assertEquals(encoded, hex(bytes), `encode ${msg.type}`);
    assertEquals(decodeBody(encoded.subarray(4)), msg, `decodeBody ${msg.type}`);
    assertEquals(decodeAll([encoded], false), [msg], `decoder ${msg.type}`);
  }
});

Deno.test("wire: the handshake has the BEP 3 layout and decodes back", () => {
  const infoHash = bytesOf(20, 1);
  const peerId = makePeerId();
  const reserved = Uint8Array.of(0, 0, 0, 0, 0, 0x10, 0, 0x05);
  const hs = encodeHandshake(infoHash, peerId, reserved);
  assertEquals(hs.length, HANDSHAKE_LENGTH);
  assertEquals(hs[0], 19);
  assertEquals(new TextDecoder().decode(hs.subarray(1, 20)), PROTOCOL);
  assertEquals(hs.subarray(20, 28), reserved);
  assertEquals(hs.subarray(28, 48), infoHash);
  assertEquals(hs.subarray(48, 68), peerId);
  assertEquals(decodeAll([hs], true), [{ type: "handshake", reserved, infoHash, peerId }]);
  // Reserved bytes default to zero.
  assertEquals(encodeHandshake(infoHash, peerId).subarray(20, 28), new Uint8Array(8));
});

Deno.test("wire: encodeHandshake rejects wrong field lengths", () => {
  const ok = new Uint8Array(20);
  assertThrows(() => encodeHandshake(new Uint8Array(19), ok), RangeError);
  assertThrows(() => encodeHandshake(ok, new Uint8Array(21)), RangeError);
  assertThrows(() => encodeHandshake(ok, ok, new Uint8Array(7)), RangeError);
});

/** A handshake followed by every message type, a 16 KiB piece among them. */
function conversation(blockLength: number) {
  const hs: Handshake = {
    type: "handshake",
    reserved: new Uint8Array(8),
    infoHash: bytesOf(20, 2),
    peerId: makePeerId(),
  };
  const msgs: Message[] = [
    ...VECTORS.map(([m]) => m),
    { type: "piece", index: 9, begin: 0, block: bytesOf(blockLength, 3) },
    { type: "keep-alive" },
    { type: "have", index: 1 },
  ];
  const bytes = concat([
    encodeHandshake(hs.infoHash, hs.peerId, hs.reserved),
    ...msgs.map(encodeMessage),
  ]);
  return { expected: [hs, ...msgs] as Out[], bytes };
}

Deno.test("wire: streaming decode fed one byte at a time", () => {
  const { expected, bytes } = conversation(300);
  const chunks = Array.from(bytes, (x) => Uint8Array.of(x));
  assertEquals(decodeAll(chunks, true), expected);
});

Deno.test("wire: streaming decode split at every byte boundary", () => {
  const { expected, bytes } = conversation(300);
  for (let k = 0; k <= bytes.length; k++) {
    assertEquals(decodeAll([bytes.subarray(0, k), bytes.subarray(k)], true), expected, `k=${k}`);
  }
});

Deno.test("wire: streaming decode in random chunks, with a full 16 KiB block", () => {
  const { expected, bytes } = conversation(BLOCK_LENGTH);
  for (let seed = 1; seed <= 50; seed++) {
    const r = mulberry32(seed);
    const chunks: Uint8Array[] = [];
    for (let off = 0; off < bytes.length;) {
      // Mostly small chunks, sometimes large ones, sometimes empty.
      const n = r() < 0.1 ? Math.floor(r() * 20000) : Math.floor(r() * 64);
      chunks.push(bytes.slice(off, off + n));
      off += n;
    }
    assertEquals(decodeAll(chunks, true), expected, `seed ${seed}`);
  }
});

Deno.test("wire: the decoder reports partial input as buffered", () => {
  const dec = new WireDecoder({ handshake: false });
  const out: Out[] = [];
  const have = encodeMessage({ type: "have", index: 5 });
  dec.push(have.subarray(0, 6), (m) => out.push(m));
  assertEquals(out, []);
  assertEquals(dec.buffered, 6);
  dec.push(have.subarray(6), (m) => out.push(m));
  assertEquals(out, [{ type: "have", index: 5 }]);
  assertEquals(dec.buffered, 0);
  // Changing the caller's chunk after a push does not change what was buffered.
  const chunk = encodeMessage({ type: "have", index: 1 });
  dec.push(chunk.subarray(0, 7), (m) => out.push(m));
  chunk[6] = 0xff; // inside the buffered part
  dec.push(chunk.subarray(7), (m) => out.push(m));
  assertEquals(out[1], { type: "have", index: 1 });
});

Deno.test("wire: an oversized length prefix is rejected before its body arrives", () => {
  for (const len of [0xffffffff, 0x7fffffff, MAX_REQUEST_LENGTH + 10]) {
    const dec = new WireDecoder({ handshake: false });
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, len);
    // Only the 4-byte prefix: the decoder must refuse now rather than wait for (and buffer) `len`.
    assertThrows(() => dec.push(prefix, () => {}), WireError, "exceeds");
  }
  // The default limit admits a piece message carrying the largest allowed block.
  const biggest = encodeMessage({
    type: "piece",
    index: 0,
    begin: 0,
    block: new Uint8Array(MAX_REQUEST_LENGTH),
  });
  assertEquals(decodeAll([biggest], false).length, 1);
  // A custom limit is exact.
  const have = encodeMessage({ type: "have", index: 1 }); // body of 5 bytes
  assertEquals(new WireDecoder({ handshake: false, maxMessageLength: 5 }).buffered, 0);
  const ok: Out[] = [];
  new WireDecoder({ handshake: false, maxMessageLength: 5 }).push(have, (m) => ok.push(m));
  assertEquals(ok.length, 1);
  assertThrows(
    () => new WireDecoder({ handshake: false, maxMessageLength: 4 }).push(have, () => {}),
    WireError,
  );
});

Deno.test("wire: truncated input is held back, never emitted half-read", () => {
  const hs = encodeHandshake(bytesOf(20, 6), makePeerId());
  const stream = concat([
    hs,
    encodeMessage({ type: "bitfield", bitfield: Uint8Array.of(0xff, 0x80) }),
    encodeMessage({ type: "request", index: 1, begin: 0, length: 16384 }),
    encodeMessage({ type: "piece", index: 1, begin: 0, block: bytesOf(100, 7) }),
  ]);
  const whole = decodeAll([stream], true);
  // Cut anywhere: only the messages wholly inside the cut come out, the rest waits.
  for (let n = 0; n < stream.length; n++) {
    const dec = new WireDecoder();
    const out: Out[] = [];
    dec.push(stream.subarray(0, n), (m) => out.push(own(m)));
    assertEquals(out, whole.slice(0, out.length), `cut at ${n}`);
    const used = out.reduce(
      (k, m) => k + (m.type === "handshake" ? 68 : encodeMessage(m as Message).length),
      0,
    );
    assertEquals(dec.buffered, n - used, `cut at ${n}`);
  }
});

Deno.test("wire: a flood never makes the decoder hold more than one message", () => {
  const dec = new WireDecoder({ handshake: false });
  const have = encodeMessage({ type: "have", index: 9 });
  const flood = new Uint8Array(have.length * 100_000);
  for (let i = 0; i < flood.length; i += have.length) flood.set(have, i);
  let n = 0;
  // Odd-sized chunks, so a message is split at every chunk boundary.
  for (let at = 0; at < flood.length; at += 65_537) {
    dec.push(flood.subarray(at, at + 65_537), () => n++);
    assert(dec.buffered < have.length, `buffered ${dec.buffered}`);
  }
  assertEquals(n, 100_000);
});

Deno.test("wire: fixed-size messages with the wrong payload size are rejected", () => {
  const cases: [number, number][] = [
    [0, 1],
    [1, 1],
    [2, 4],
    [3, 1],
    [4, 3],
    [4, 5],
    [6, 11],
    [6, 13],
    [8, 0],
    [8, 16],
    [9, 1],
    [9, 3],
    [7, 7],
    [7, 0],
  ];
  for (const [id, n] of cases) {
    const body = new Uint8Array(1 + n);
    body[0] = id;
    assertThrows(() => decodeBody(body), WireError, "payload");
    const framed = new Uint8Array(4 + body.length);
    new DataView(framed.buffer).setUint32(0, body.length);
    framed.set(body, 4);
    assertThrows(
      () => new WireDecoder({ handshake: false }).push(framed, () => {}),
      WireError,
      undefined,
    );
  }
});

Deno.test("wire: a bad handshake is rejected", () => {
  const good = encodeHandshake(bytesOf(20, 4), makePeerId());
  // The wrong protocol-name length is refused on the very first byte.
  assertThrows(() => new WireDecoder().push(Uint8Array.of(18), () => {}), WireError, "19");
  assertThrows(() => new WireDecoder().push(Uint8Array.of(0), () => {}), WireError);
  // A message where the handshake belongs (here a keep-alive) starts with 0, not 19.
  assertThrows(() => new WireDecoder().push(new Uint8Array(4), () => {}), WireError);
  // The wrong protocol name, in any position.
  for (let i = 1; i < 20; i++) {
    const bad = good.slice();
    bad[i] ^= 0x20;
    assertThrows(() => new WireDecoder().push(bad, () => {}), WireError, "protocol");
  }
  // A decoder told not to expect one reads a handshake as a (too long) message.
  assertThrows(() => new WireDecoder({ handshake: false }).push(good, () => {}), WireError);
});

Deno.test("wire: only one handshake is expected", () => {
  const hs = encodeHandshake(bytesOf(20, 5), makePeerId());
  const dec = new WireDecoder();
  const out: Out[] = [];
  dec.push(hs, (m) => out.push(own(m)));
  assertEquals(out.length, 1);
  // A second handshake is read as messages: its first 4 bytes make an oversized length.
  assertThrows(() => dec.push(hs, () => {}), WireError);
});

Deno.test("wire: peer ids are -SW0001- and 12 alphanumerics, and differ", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const id = makePeerId();
    assertEquals(id.length, 20);
    const text = new TextDecoder().decode(id);
    assert(/^-SW0001-[0-9A-Za-z]{12}$/.test(text), `peer id ${text}`);
    seen.add(text);
  }
  assertEquals(seen.size, 100);
  assertNotEquals(makePeerId(), makePeerId());
});
