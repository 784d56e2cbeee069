/**
 * Tests for `lib/metainfo.ts`: the info-hash is the SHA-1 of the bencoded info dictionary, piece
 * hashes of a real file match an independent `node:crypto` computation, the short last piece,
 * the .torrent round trip, and every unsafe or inconsistent info dictionary `fromInfo` refuses.
 *
 * @example
 * ```sh
 * deno test -P tests/metainfo_test.ts
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { encode } from "../lib/bencode.ts";
import { toHex } from "../lib/hash.ts";
import {
  fromInfo,
  hashFile,
  makeMetainfo,
  MAX_PIECE_LENGTH,
  MetainfoError,
  parseTorrent,
  pieceHash,
  pieceSize,
  toTorrent,
} from "../lib/metainfo.ts";
import { assertEquals, assertRejects } from "./assert.ts";

const te = new TextEncoder();

function sha1Node(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(data).digest());
}

/** Deterministic file content that differs from piece to piece. */
function content(n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Concatenated SHA-1s of `data` cut into pieces, computed independently with node:crypto. */
function pieceHashesNode(data: Uint8Array, pieceLength: number): Uint8Array {
  const count = Math.ceil(data.length / pieceLength);
  const out = new Uint8Array(count * 20);
  for (let i = 0; i < count; i++) {
    out.set(sha1Node(data.subarray(i * pieceLength, (i + 1) * pieceLength)), i * 20);
  }
  return out;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "metainfo_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("metainfo: a known vector, built byte by byte", async () => {
  // "hello" in one piece: pieces is SHA-1("hello"), a published value.
  const pieces = Uint8Array.from(
    "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d".match(/../g)!,
    (h) => parseInt(h, 16),
  );
  assertEquals(sha1Node(te.encode("hello")), pieces);
  const meta = await makeMetainfo("a.txt", 5, 16384, pieces);
  // The info dictionary spelled out by hand, keys in sorted order.
  const info = new Uint8Array([
    ...te.encode("d6:lengthi5e4:name5:a.txt12:piece lengthi16384e6:pieces20:"),
    ...pieces,
    ...te.encode("e"),
  ]);
  assertEquals(meta.info, info);
  assertEquals(meta.infoHash, sha1Node(info));
  assertEquals(meta.infoHashHex, toHex(sha1Node(info)));
  assertEquals(meta.name, "a.txt");
  assertEquals(meta.length, 5);
  assertEquals(meta.pieceLength, 16384);
  assertEquals(meta.pieceCount, 1);
});

Deno.test("metainfo: hashFile matches node:crypto piece by piece, short last piece", async () => {
  await withTempDir(async (dir) => {
    const pieceLength = 16384;
    const cases = [
      { length: 2 * pieceLength + 1000, count: 3, last: 1000 },
      { length: 3 * pieceLength, count: 3, last: pieceLength },
      { length: 1, count: 1, last: 1 },
      { length: pieceLength - 1, count: 1, last: pieceLength - 1 },
      { length: pieceLength + 1, count: 2, last: 1 },
    ];
    for (const c of cases) {
      const data = content(c.length);
      const path = `${dir}/file-${c.length}.bin`;
      await Deno.writeFile(path, data);
      const progress: number[] = [];
      const meta = await hashFile(path, {
        pieceLength,
        onProgress: (_done, total) => progress.push(total),
      });
      assertEquals(meta.name, `file-${c.length}.bin`);
      assertEquals(meta.length, c.length);
      assertEquals(meta.pieceCount, c.count);
      assertEquals(meta.pieces, pieceHashesNode(data, pieceLength), `pieces of ${c.length}`);
      assertEquals(progress.length, c.count, "onProgress once per piece");
      for (let i = 0; i < c.count; i++) {
        assertEquals(
          pieceHash(meta, i),
          sha1Node(data.subarray(i * pieceLength, (i + 1) * pieceLength)),
        );
        assertEquals(pieceSize(meta, i), i === c.count - 1 ? c.last : pieceLength);
      }
      assertEquals(pieceSize(meta, c.count), 0, "past the end");
      // The info-hash is the SHA-1 of the bencoded info dictionary.
      const info = encode({
        length: c.length,
        name: meta.name,
        "piece length": pieceLength,
        pieces: meta.pieces,
      });
      assertEquals(meta.info, info);
      assertEquals(meta.infoHash, sha1Node(info));
    }
  });
});

Deno.test("metainfo: hashFile uses the default piece length and a given name", async () => {
  await withTempDir(async (dir) => {
    const data = content((1 << 20) + 5);
    await Deno.writeFile(`${dir}/x.bin`, data);
    const meta = await hashFile(`${dir}/x.bin`, { name: "renamed.iso" });
    assertEquals(meta.pieceLength, 1 << 20);
    assertEquals(meta.pieceCount, 2);
    assertEquals(meta.name, "renamed.iso");
    assertEquals(meta.pieces, pieceHashesNode(data, 1 << 20));
  });
});

Deno.test("metainfo: hashFile rejects an empty file", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/empty`, new Uint8Array(0));
    await assertRejects(() => hashFile(`${dir}/empty`), MetainfoError, "empty");
  });
});

Deno.test("metainfo: toTorrent then parseTorrent keeps the info-hash and announce", async () => {
  const data = content(40000);
  const meta = await makeMetainfo(
    "ubuntu-teste.iso",
    data.length,
    16384,
    pieceHashesNode(data, 16384),
  );
  const torrent = toTorrent(meta, "http://localhost:8000/announce");
  const { announce, meta: back } = await parseTorrent(torrent);
  assertEquals(announce, "http://localhost:8000/announce");
  assertEquals(back, meta);
  assertEquals(back.infoHash, sha1Node(meta.info));
});

Deno.test("metainfo: parseTorrent hashes the info bytes as given, extra keys included", async () => {
  const pieces = sha1Node(te.encode("hello"));
  // An info dictionary with a key this program never writes ("private").
  const info = new Uint8Array([
    ...te.encode("d6:lengthi5e4:name5:a.txt12:piece lengthi16384e6:pieces20:"),
    ...pieces,
    ...te.encode("7:privatei1ee"),
  ]);
  const torrent = new Uint8Array([
    ...te.encode("d8:announce9:http://x/4:info"),
    ...info,
    ...te.encode("e"),
  ]);
  const { announce, meta } = await parseTorrent(torrent);
  assertEquals(announce, "http://x/");
  assertEquals(meta.info, info);
  assertEquals(meta.infoHash, sha1Node(info));
});

Deno.test("metainfo: parseTorrent rejects garbage and a torrent without info", async () => {
  await assertRejects(() => parseTorrent(te.encode("not bencode")), MetainfoError, "not a valid");
  await assertRejects(() => parseTorrent(te.encode("d8:announce1:xe")), MetainfoError, "no info");
  await assertRejects(() => parseTorrent(te.encode("le")), MetainfoError);
});

Deno.test("metainfo: fromInfo rejects unsafe names and inconsistent fields", async () => {
  const pieces = new Uint8Array(40);
  const good = { length: 20000, name: "a.iso", "piece length": 16384, pieces };
  // deno-lint-ignore no-explicit-any
  const cases: [string, any, string][] = [
    ["parent directory", { ...good, name: "../x" }, "unsafe"],
    ["slash", { ...good, name: "a/b" }, "unsafe"],
    ["absolute", { ...good, name: "/etc/passwd" }, "unsafe"],
    ["backslash", { ...good, name: "a\\b" }, "unsafe"],
    ["dot", { ...good, name: "." }, "unsafe"],
    ["dot dot", { ...good, name: ".." }, "unsafe"],
    ["empty name", { ...good, name: "" }, "unsafe"],
    ["pieces one hash short", { ...good, pieces: new Uint8Array(20) }, "pieces"],
    ["pieces one hash long", { ...good, pieces: new Uint8Array(60) }, "pieces"],
    ["pieces not a multiple of 20", { ...good, pieces: new Uint8Array(39) }, "pieces"],
    ["piece length 0", { ...good, "piece length": 0 }, "piece length"],
    ["piece length negative", { ...good, "piece length": -1 }, "piece length"],
    ["piece length too big", { ...good, "piece length": MAX_PIECE_LENGTH + 1 }, "piece length"],
    ["length 0", { ...good, length: 0, pieces: new Uint8Array(0) }, "length"],
    ["length negative", { ...good, length: -5 }, "length"],
    ["multi-file", { ...good, files: [{ length: 1, path: ["a"] }] }, "multi-file"],
    ["missing name", { length: 1, "piece length": 16384, pieces: new Uint8Array(20) }, "name"],
    ["missing pieces", { length: 1, name: "a", "piece length": 16384 }, "pieces"],
    ["string length", { ...good, length: "20000" }, "length"],
    ["huge length", { ...good, length: 2n ** 60n }, "length"],
  ];
  for (const [why, dict, msg] of cases) {
    await assertRejects(() => fromInfo(encode(dict)), MetainfoError, msg).catch((e) => {
      throw new Error(`${why}: ${e.message}`);
    });
  }
  await assertRejects(() => fromInfo(encode([1])), MetainfoError, "not a dictionary");
  await assertRejects(() => fromInfo(te.encode("d4:name")), MetainfoError, "not valid bencoding");
  // The largest piece length is accepted, and the good dictionary itself is.
  await fromInfo(encode({ ...good, "piece length": MAX_PIECE_LENGTH, pieces: new Uint8Array(20) }));
  assertEquals((await fromInfo(encode(good))).pieceCount, 2);
});

Deno.test("metainfo: hostile .torrent files get a MetainfoError naming the problem", async () => {
  const info = { length: 5, name: "a", "piece length": 16384, pieces: new Uint8Array(20) };
  const good = encode({ announce: "http://x/announce", info });
  const cases: [string, Uint8Array, string][] = [
    ["nesting bomb", te.encode("l".repeat(100_000)), "nesting too deep"],
    ["nesting bomb inside info", te.encode(`d4:info${"l".repeat(50)}`), "nesting too deep"],
    ["giant declared length", te.encode("d8:announce9999999999:x"), "runs past the end"],
    ["giant length digits", te.encode("d8:announce99999999999:x"), "malformed string length"],
    ["negative integer with leading zero", te.encode("d4:infod6:lengthi-05eee"), "malformed"],
    ["info is a list", te.encode("d4:infoli1eee"), "info is not a dictionary"],
    ["info is a string", te.encode("d4:info3:abce"), "info is not a dictionary"],
    ["name is an integer", encode({ info: { ...info, name: 7 } }), "name is missing or not"],
    ["pieces is a list", encode({ info: { ...info, pieces: [1] } }), "pieces is missing or not"],
    ["non-UTF-8 name", encode({ info: { ...info, name: Uint8Array.of(0x61, 0xff) } }), "UTF-8"],
    ["NUL in name", encode({ info: { ...info, name: "a\0b" } }), "unsafe file name"],
    ["escape in name", encode({ info: { ...info, name: "\x1b[2Jx" } }), "unsafe file name"],
  ];
  for (const [why, bytes, msg] of cases) {
    await assertRejects(() => parseTorrent(bytes), MetainfoError, msg).catch((e) => {
      throw new Error(`${why}: ${e.message}`);
    });
  }
  // Every truncation of a good .torrent is refused, never half-read.
  for (let n = 0; n < good.length; n++) {
    await assertRejects(() => parseTorrent(good.subarray(0, n)), MetainfoError, "not a valid");
  }
  assertEquals((await parseTorrent(good)).meta.name, "a");
  // A name in UTF-8 beyond ASCII is fine.
  assertEquals((await fromInfo(encode({ ...info, name: "café ü.iso" }))).name, "café ü.iso");
});

Deno.test("metainfo: makeMetainfo refuses what fromInfo refuses", async () => {
  await assertRejects(() => makeMetainfo("../x", 1, 16384, new Uint8Array(20)), MetainfoError);
  await assertRejects(() => makeMetainfo("x", 1, 16384, new Uint8Array(19)), MetainfoError);
});

Deno.test("metainfo: returned buffers are copies of the input", async () => {
  const info = encode({ length: 5, name: "a", "piece length": 16384, pieces: new Uint8Array(20) });
  const meta = await fromInfo(info);
  const hash = meta.infoHashHex;
  info.fill(0);
  assertEquals(meta.infoHashHex, hash);
  assertEquals(meta.info[0], 0x64, "meta.info still starts with d");
  assertEquals(meta.name, "a");
  assertEquals(meta.pieces, new Uint8Array(20));
});
