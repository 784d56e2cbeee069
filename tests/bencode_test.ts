/**
 * Tests for `lib/bencode.ts`: known vectors, round trips, sorted keys, the info-dictionary span,
 * and every malformation the decoder must reject with {@linkcode BencodeError}.
 *
 * @example
 * ```sh
 * deno test -P tests/bencode_test.ts
 * ```
 * @module
 */

import { BencodeError, type BValue, decode, decodeWithSpan, encode } from "../lib/bencode.ts";
import { assert, assertEquals, assertThrows } from "./assert.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const b = (s: string) => te.encode(s);
/** Latin-1 bytes: every char code is one byte, for inputs that are not valid UTF-8. */
const raw = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

Deno.test("bencode: known vectors encode to the bytes BEP 3 gives", () => {
  const cases: [BValue, string][] = [
    [{ cow: "moo", spam: "eggs" }, "d3:cow3:moo4:spam4:eggse"],
    [{ spam: ["a", "b"] }, "d4:spaml1:a1:bee"],
    [["spam", "eggs"], "l4:spam4:eggse"],
    ["spam", "4:spam"],
    ["", "0:"],
    [3, "i3e"],
    [-3, "i-3e"],
    [0, "i0e"],
    [[], "le"],
    [{}, "de"],
    [new Uint8Array([0, 255, 58]), "3:\x00\xff:"],
    [Number.MAX_SAFE_INTEGER, "i9007199254740991e"],
    [2n ** 63n - 1n, "i9223372036854775807e"],
    [-(2n ** 63n), "i-9223372036854775808e"],
    ["é", "2:\xc3\xa9"],
  ];
  for (const [value, expected] of cases) {
    assertEquals(encode(value), raw(expected), `encode ${expected}`);
  }
});

Deno.test("bencode: known vectors decode to the expected values", () => {
  const d = decode(b("d3:cow3:moo4:spam4:eggse")) as Record<string, Uint8Array>;
  assertEquals(Object.keys(d), ["cow", "spam"]);
  assertEquals(td.decode(d.cow), "moo");
  assertEquals(td.decode(d.spam), "eggs");
  assertEquals(decode(b("l4:spam4:eggse")), [b("spam"), b("eggs")]);
  assertEquals(decode(b("i3e")), 3);
  assertEquals(decode(b("i-3e")), -3);
  assertEquals(decode(b("i0e")), 0);
  assertEquals(decode(b("0:")), new Uint8Array(0));
  assertEquals(decode(b("le")), []);
  assertEquals(decode(b("de")), {});
  // Outside the safe-integer range integers come back as bigint, exactly.
  assertEquals(decode(b("i9007199254740993e")), 9007199254740993n);
  assertEquals(decode(b("i-9223372036854775808e")), -(2n ** 63n));
  assertEquals(decode(b("i9007199254740991e")), Number.MAX_SAFE_INTEGER);
});

Deno.test("bencode: round trips keep every value, binary strings included", () => {
  const all = new Uint8Array(256).map((_, i) => i);
  const values: BValue[] = [
    0,
    -1,
    42,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER,
    2n ** 64n + 7n,
    all,
    new Uint8Array(0),
    [],
    {},
    [1, [2, [3, [all]]], { x: [] }],
    {
      announce: b("http://localhost:8000/announce"),
      info: {
        length: 524288000,
        name: b("ubuntu-teste.iso"),
        "piece length": 1048576,
        pieces: all,
      },
      list: [b("a"), 1, { nested: {} }],
    },
  ];
  for (const v of values) {
    const bytes = encode(v);
    const back = decode(bytes);
    assertEquals(back, v);
    assertEquals(encode(back), bytes, "re-encoding is byte-identical");
  }
});

Deno.test("bencode: strings encode as UTF-8 and decode as bytes", () => {
  assertEquals(decode(encode("héllo ✓")), b("héllo ✓"));
});

Deno.test("bencode: dictionary keys are emitted sorted by raw bytes", () => {
  assertEquals(td.decode(encode({ b: 1, a: 2, c: 3 })), "d1:ai2e1:bi1e1:ci3ee");
  // Upper case sorts before lower case (0x42 < 0x61); a prefix sorts before its extensions.
  assertEquals(td.decode(encode({ a: 1, B: 2, ab: 3 })), "d1:Bi2e1:ai1e2:abi3ee");
  // UTF-16 order puts U+1F600 (a surrogate pair, 0xD83D...) before U+FF01, but its UTF-8 bytes
  // (F0 ...) sort after U+FF01's (EF ...): the encoder must use the byte order.
  const out = encode({ "\u{1F600}": 1, "\uFF01": 2 });
  assertEquals(
    out,
    Uint8Array.of(
      ...b("d3:"),
      0xef,
      0xbc,
      0x81,
      ...b("i2e4:"),
      0xf0,
      0x9f,
      0x98,
      0x80,
      ...b("i1ee"),
    ),
  );
  assertEquals(decode(out), { "\uFF01": 2, "\u{1F600}": 1 });
});

Deno.test("bencode: decoded dictionaries have no prototype, so __proto__ is just a key", () => {
  const d = decode(b("d9:__proto__i1e1:xi2ee")) as Record<string, unknown>;
  assertEquals(Object.keys(d), ["__proto__", "x"]);
  assertEquals(d["__proto__"], 1);
  assertEquals(({} as Record<string, unknown>).x, undefined, "no prototype pollution");
});

Deno.test("bencode: encode rejects numbers that are not safe integers", () => {
  for (const n of [1.5, NaN, Infinity, -Infinity, 2 ** 53]) {
    assertThrows(() => encode(n), TypeError);
    assertThrows(() => encode([{ a: n }]), TypeError);
  }
});

Deno.test("bencode: every malformation throws BencodeError", () => {
  const bad: [string, string][] = [
    ["", "empty input"],
    ["x", "unknown type byte"],
    ["i03e", "integer with a leading zero"],
    ["i-03e", "negative integer with a leading zero"],
    ["i00e", "integer of two zeros"],
    ["i-0e", "negative zero"],
    ["ie", "empty integer"],
    ["i-e", "sign without digits"],
    ["i+3e", "plus sign"],
    ["i 3e", "space in integer"],
    ["i1.5e", "fraction"],
    ["i12", "unterminated integer"],
    ["i", "lone i"],
    [`i${"1".repeat(30)}e`, "integer too long"],
    ["03:abc", "string length with a leading zero"],
    ["-1:a", "negative string length"],
    ["+1:a", "string length with a plus sign"],
    ["1.0:a", "fractional string length"],
    ["5:abc", "truncated string"],
    ["1:", "string missing its byte"],
    ["4spam", "string without a colon"],
    ["99999999999:a", "string length too long"],
    ["l", "unterminated list"],
    ["l4:spam", "list without e"],
    ["li1e", "list of one without e"],
    ["d", "unterminated dictionary"],
    ["d1:a", "dictionary key without value"],
    ["d1:ai1e", "dictionary without e"],
    ["di1ei2ee", "integer key"],
    ["dl1:ae1:be", "list key"],
    ["d1:bi1e1:ai2ee", "unsorted keys"],
    ["d1:ai1e1:ai2ee", "repeated key"],
    ["d2:abi1e1:ai2ee", "extension before its prefix"],
    ["i1ei2e", "trailing integer"],
    ["4:spamx", "trailing byte after a string"],
    ["lee", "trailing e"],
    ["de\n", "trailing newline"],
    ["e", "lone e"],
  ];
  for (const [input, why] of bad) {
    let e: unknown;
    try {
      decode(raw(input));
    } catch (caught) {
      e = caught;
    }
    assert(e instanceof BencodeError, `${why} (${JSON.stringify(input)}): got ${e}`);
    assert(e.offset >= 0 && e.offset <= input.length, `${why}: offset ${e.offset} in range`);
    assert(e.message.includes(`at byte ${e.offset}`), `${why}: message names the offset`);
  }
});

Deno.test("bencode: nesting deeper than the limit throws; at the limit it decodes", () => {
  const nest = (n: number) => b("l".repeat(n) + "e".repeat(n));
  // Depth counts from 0 at the top: 33 nested lists reach depth 32, the default limit.
  assertEquals(encode(decode(nest(33))), nest(33));
  assertThrows(() => decode(nest(34)), BencodeError, "nesting too deep");
  assertThrows(() => decode(nest(100_000)), BencodeError, "nesting too deep");
  assertThrows(() => decode(b("d1:ad1:ad1:ai1eeee"), { maxDepth: 2 }), BencodeError);
  assertEquals(decode(b("d1:ad1:ai1eee"), { maxDepth: 2 }), { a: { a: 1 } });
});

Deno.test("bencode: hostile sizes and shapes are refused before anything is allocated", () => {
  // Declared lengths that fit the 10-digit limit but not the input: refused, not allocated.
  for (const len of ["9999999999", "4294967296", "2147483647", "17"]) {
    assertThrows(() => decode(b(`${len}:abc`)), BencodeError, "runs past the end");
  }
  // Dictionary bombs nest too: refused at the limit whatever the shape.
  assertThrows(() => decode(b("d1:a".repeat(10_000))), BencodeError, "nesting too deep");
  assertThrows(() => decode(b("ld1:a".repeat(5_000))), BencodeError, "nesting too deep");
  // Integers: 20 digits still decode (as bigint), 21 are refused; minus zero and leading zeros
  // are not integers.
  assertEquals(decode(b(`i${"9".repeat(20)}e`)), BigInt("9".repeat(20)));
  assertEquals(decode(b(`i-${"9".repeat(19)}e`)), -BigInt("9".repeat(19)));
  assertThrows(() => decode(b(`i${"9".repeat(21)}e`)), BencodeError, "unterminated integer");
  assertThrows(() => decode(b("i-0e")), BencodeError, "malformed integer");
  assertThrows(() => decode(b("i007e")), BencodeError, "malformed integer");
  // Every truncation of a valid value is refused.
  const whole = encode({ a: [1, "xy", { b: new Uint8Array(3) }], c: -5 });
  for (let n = 0; n < whole.length; n++) {
    assertThrows(() => decode(whole.subarray(0, n)), BencodeError);
  }
  // Non-UTF-8 bytes are fine in values (piece hashes are binary), byte for byte.
  assertEquals(decode(raw("2:\xff\xfe")), raw("\xff\xfe"));
});

Deno.test("bencode: input larger than maxBytes throws before decoding", () => {
  const input = encode(new Uint8Array(100)); // 104 bytes
  assertEquals(input.length, 104);
  assertEquals(decode(input, { maxBytes: 104 }), new Uint8Array(100));
  assertThrows(() => decode(input, { maxBytes: 103 }), BencodeError, "limit");
  assertThrows(() => decodeWithSpan(input, "info", { maxBytes: 103 }), BencodeError, "limit");
  // The default limit is 16 MiB.
  const big = encode(new Uint8Array(16 * 1024 * 1024));
  assertThrows(() => decode(big), BencodeError, "limit");
});

Deno.test("bencode: decodeWithSpan returns the exact bytes of the top-level key's value", () => {
  const info = "d6:lengthi5e4:name1:ae";
  const input = b(`d8:announce3:url4:info${info}5:otheri1ee`);
  const { value, span } = decodeWithSpan(input, "info");
  assertEquals(span, b(info));
  assertEquals((value as Record<string, BValue>).other, 1);
  // Only the top level counts: an "info" key nested deeper is not the span.
  const nested = decodeWithSpan(b("d1:ad4:infoi1eee"), "info");
  assertEquals(nested.span, undefined);
  assertThrows(() => decodeWithSpan(b(`d4:info${info}ex`), "info"), BencodeError, "trailing");
});
