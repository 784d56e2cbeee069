/**
 * Tests for `lib/bitfield.ts`: BEP 3 bit order (piece 0 is the high bit of byte 0), the running
 * count, and `fromBytes` rejecting wrong lengths and set spare bits.
 *
 * @example
 * ```sh
 * deno test -P tests/bitfield_test.ts
 * ```
 * @module
 */

import { Bitfield, BitfieldError } from "../lib/bitfield.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";

Deno.test("bitfield: piece 0 is the high bit of the first byte", () => {
  const cases: [number, number[], number[]][] = [
    [8, [0], [0x80]],
    [8, [7], [0x01]],
    [8, [0, 7], [0x81]],
    [10, [0, 9], [0x80, 0x40]],
    [10, [8], [0x00, 0x80]],
    [16, [1, 3, 5, 7, 8, 15], [0x55, 0x81]],
    [1, [0], [0x80]],
    [17, [16], [0, 0, 0x80]],
  ];
  for (const [size, set, bytes] of cases) {
    const bf = new Bitfield(size);
    for (const i of set) bf.set(i);
    assertEquals(bf.toBytes(), Uint8Array.from(bytes), `size ${size}, set ${set}`);
    assertEquals(bf.count, set.length);
    assertEquals([...bf.indices()], set);
    for (let i = 0; i < size; i++) assertEquals(bf.has(i), set.includes(i), `has(${i})`);
  }
});

Deno.test("bitfield: set and clear keep the count and report changes", () => {
  const bf = new Bitfield(20);
  assertEquals(bf.count, 0);
  assertEquals(bf.set(3), true);
  assertEquals(bf.set(3), false, "second set of the same piece");
  assertEquals(bf.count, 1);
  assertEquals(bf.set(19), true);
  assertEquals(bf.count, 2);
  assertEquals(bf.clear(3), true);
  assertEquals(bf.clear(3), false, "second clear");
  assertEquals(bf.count, 1);
  assertEquals(bf.has(3), false);
  assertEquals(bf.has(19), true);
  assertEquals(bf.complete, false);
});

Deno.test("bitfield: out-of-range indices read false and throw on write", () => {
  const bf = Bitfield.full(10);
  for (const i of [-1, 10, 16, 2 ** 32 - 1, NaN, Infinity]) {
    assertEquals(bf.has(i), false, `has(${i})`);
  }
  for (const i of [-1, 10, 16, 2 ** 32 - 1, 1.5, NaN, Infinity]) {
    assertThrows(() => bf.set(i), RangeError);
    assertThrows(() => bf.clear(i), RangeError);
  }
  assertEquals(bf.count, 10);
});

Deno.test("bitfield: the constructor rejects negative and fractional sizes", () => {
  for (const n of [-1, 1.5, NaN]) assertThrows(() => new Bitfield(n), RangeError);
});

Deno.test("bitfield: byteLength rounds up to whole bytes", () => {
  const cases: [number, number][] = [[0, 0], [1, 1], [8, 1], [9, 2], [16, 2], [500, 63]];
  for (const [size, bytes] of cases) {
    assertEquals(Bitfield.byteLength(size), bytes);
    assertEquals(new Bitfield(size).bytes.length, bytes);
  }
});

Deno.test("bitfield: fromBytes reads wire bytes and counts them", () => {
  const bf = Bitfield.fromBytes(Uint8Array.of(0xff, 0x0f, 0xc0), 18);
  assertEquals(bf.count, 14);
  assertEquals([...bf.indices()], [0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17]);
  assertEquals(bf.complete, false);
  // The bitfield keeps a copy: changing the input afterwards does not change it.
  const input = Uint8Array.of(0x80);
  const copy = Bitfield.fromBytes(input, 1);
  input[0] = 0;
  assertEquals(copy.has(0), true);
});

Deno.test("bitfield: fromBytes rejects the wrong length", () => {
  const cases: [number, number][] = [[10, 1], [10, 3], [8, 0], [8, 2], [0, 1], [500, 62]];
  for (const [size, len] of cases) {
    assertThrows(() => Bitfield.fromBytes(new Uint8Array(len), size), BitfieldError, "expected");
  }
  assertEquals(Bitfield.fromBytes(new Uint8Array(0), 0).count, 0);
});

Deno.test("bitfield: fromBytes rejects every spare bit that is set", () => {
  for (const size of [1, 3, 7, 9, 10, 15, 17]) {
    const len = Bitfield.byteLength(size);
    const spare = len * 8 - size;
    for (let bit = 0; bit < spare; bit++) {
      const bytes = new Uint8Array(len);
      bytes[len - 1] = 1 << bit;
      assertThrows(() => Bitfield.fromBytes(bytes, size), BitfieldError, "spare");
    }
    // With every real bit set and no spare bit, it is accepted and complete.
    const full = Bitfield.fromBytes(Bitfield.full(size).toBytes(), size);
    assert(full.complete, `size ${size} complete`);
  }
});

Deno.test("bitfield: full() sets every piece and no spare bit", () => {
  for (let size = 0; size <= 24; size++) {
    const bf = Bitfield.full(size);
    assertEquals(bf.count, size);
    assertEquals(bf.complete, true);
    assertEquals([...bf.indices()].length, size);
    const bytes = bf.toBytes();
    const spare = bytes.length * 8 - size;
    if (spare > 0) assertEquals(bytes[bytes.length - 1] & ((1 << spare) - 1), 0, `size ${size}`);
    for (let i = 0; i < bytes.length - (spare > 0 ? 1 : 0); i++) assertEquals(bytes[i], 0xff);
  }
  assertEquals(Bitfield.full(10).toBytes(), Uint8Array.of(0xff, 0xc0));
});

Deno.test("bitfield: an empty bitfield of zero pieces is complete", () => {
  const bf = new Bitfield(0);
  assertEquals(bf.count, 0);
  assertEquals(bf.complete, true);
  assertEquals(bf.toBytes(), new Uint8Array(0));
});

Deno.test("bitfield: toBytes returns a copy", () => {
  const bf = new Bitfield(8);
  const out = bf.toBytes();
  out[0] = 0xff;
  assertEquals(bf.count, 0);
  assertEquals(bf.has(0), false);
});
