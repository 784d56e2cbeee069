/**
 * Tests for `lib/piece_store.ts` on real files in a temporary directory: verified pieces land at
 * their offset byte for byte, bad pieces never reach the disk, blocks read back, `scan()` finds
 * exactly the good pieces after a reopen, and size or path problems raise
 * {@linkcode PieceStoreError}.
 *
 * @example
 * ```sh
 * deno test -P tests/piece_store_test.ts
 * ```
 * @module
 */

import { createHash } from "node:crypto";
import { makeMetainfo, type Metainfo } from "../lib/metainfo.ts";
import { PieceStore, PieceStoreError } from "../lib/piece_store.ts";
import { assert, assertEquals, assertRejects } from "./assert.ts";

const PIECE = 16384;

/** Deterministic content, different in every piece. */
function content(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function metaFor(
  data: Uint8Array,
  pieceLength = PIECE,
  name = "file.iso",
): Promise<Metainfo> {
  const count = Math.ceil(data.length / pieceLength);
  const pieces = new Uint8Array(count * 20);
  for (let i = 0; i < count; i++) {
    const piece = data.subarray(i * pieceLength, (i + 1) * pieceLength);
    pieces.set(createHash("sha1").update(piece).digest(), i * 20);
  }
  return await makeMetainfo(name, data.length, pieceLength, pieces);
}

function piece(data: Uint8Array, i: number, pieceLength = PIECE): Uint8Array {
  return data.slice(i * pieceLength, (i + 1) * pieceLength);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "piece_store_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("piece_store: create makes a zero-filled file of the full length", async () => {
  await withTempDir(async (dir) => {
    const data = content(2 * PIECE + 777);
    const meta = await metaFor(data);
    const store = await PieceStore.create(`${dir}/out.iso`, meta);
    try {
      assertEquals(store.path, `${dir}/out.iso`);
      assertEquals(await Deno.readFile(`${dir}/out.iso`), new Uint8Array(data.length));
    } finally {
      store.close();
    }
  });
});

Deno.test("piece_store: a good piece is written at its offset, byte for byte", async () => {
  await withTempDir(async (dir) => {
    const data = content(3 * PIECE + 1000);
    const meta = await metaFor(data);
    const path = `${dir}/out.iso`;
    const store = await PieceStore.create(path, meta);
    const expected = new Uint8Array(data.length);
    try {
      for (const i of [2, 0, 3]) {
        assertEquals(store.verifyAndWrite(i, piece(data, i)), true, `piece ${i}`);
        expected.set(piece(data, i), i * PIECE);
        assertEquals(await Deno.readFile(path), expected, `file after piece ${i}`);
      }
      // The short last piece ends exactly at the end of the file.
      assertEquals((await Deno.stat(path)).size, data.length);
      assertEquals(store.verifyAndWrite(1, piece(data, 1)), true);
      assertEquals(await Deno.readFile(path), data);
    } finally {
      store.close();
    }
  });
});

Deno.test("piece_store: a bad piece returns false and leaves the file unchanged", async () => {
  await withTempDir(async (dir) => {
    const data = content(3 * PIECE + 1000);
    const meta = await metaFor(data);
    const path = `${dir}/out.iso`;
    const store = await PieceStore.create(path, meta);
    try {
      assertEquals(store.verifyAndWrite(1, piece(data, 1)), true);
      const before = await Deno.readFile(path);
      const flipped = piece(data, 0);
      flipped[100] ^= 1;
      const bad: [string, number, Uint8Array][] = [
        ["one bit flipped", 0, flipped],
        ["another piece's bytes", 0, piece(data, 2)],
        ["too short", 0, piece(data, 0).subarray(1)],
        ["too long", 3, piece(data, 2)],
        ["empty", 2, new Uint8Array(0)],
        ["index past the end", 4, piece(data, 0)],
        ["negative index", -1, piece(data, 0)],
        ["overwriting a good piece with zeros", 1, new Uint8Array(PIECE)],
      ];
      for (const [why, index, bytes] of bad) {
        assertEquals(store.verifyAndWrite(index, bytes), false, why);
        assertEquals(await Deno.readFile(path), before, `${why}: file unchanged`);
      }
    } finally {
      store.close();
    }
  });
});

Deno.test("piece_store: readBlock returns the right bytes, from cache and from disk", async () => {
  await withTempDir(async (dir) => {
    const data = content(20 * PIECE + 5);
    const meta = await metaFor(data);
    const path = `${dir}/out.iso`;
    const store = await PieceStore.create(path, meta);
    try {
      for (let i = 0; i < meta.pieceCount; i++) store.verifyAndWrite(i, piece(data, i));
      // More pieces than the cache holds, read in a scattered order, some twice.
      for (const i of [0, 19, 5, 0, 20, 13, 7, 19, 1, 2, 3, 4, 5, 6, 8, 0]) {
        const begin = i === 20 ? 0 : 1000;
        const length = i === 20 ? 5 : 5000;
        const off = i * PIECE + begin;
        assertEquals(await store.readBlock(i, begin, length), data.slice(off, off + length));
      }
    } finally {
      store.close();
    }
    // A fresh store reads from disk only.
    const again = await PieceStore.openForSeeding(path, meta);
    try {
      const blocks = await Promise.all(
        Array.from({ length: meta.pieceCount }, (_, i) => again.readBlock(i, 0, PIECE)),
      );
      blocks.forEach((b, i) => assertEquals(b, piece(data, i), `piece ${i}`));
    } finally {
      again.close();
    }
  });
});

Deno.test("piece_store: scan() after a reopen finds exactly the pieces written", async () => {
  await withTempDir(async (dir) => {
    const data = content(10 * PIECE + 99);
    const meta = await metaFor(data);
    const path = `${dir}/out.iso`;
    const written = [0, 3, 4, 9, 10];
    const first = await PieceStore.create(path, meta);
    try {
      assertEquals([...(await first.scan()).indices()], [], "a new file holds nothing");
      for (const i of written) first.verifyAndWrite(i, piece(data, i));
    } finally {
      first.close();
    }
    // Damage piece 4 behind the store's back: it must not be counted.
    const f = await Deno.open(path, { write: true });
    await f.seek(4 * PIECE + 10, Deno.SeekMode.Start);
    await f.write(Uint8Array.of(0x5a ^ data[4 * PIECE + 10]));
    f.close();
    const reopened = await PieceStore.create(path, meta);
    try {
      const progress: number[] = [];
      const have = await reopened.scan((done, total) => {
        assertEquals(total, meta.pieceCount);
        progress.push(done);
      });
      assertEquals([...have.indices()], [0, 3, 9, 10]);
      assertEquals(have.count, 4);
      assertEquals(progress, Array.from({ length: meta.pieceCount }, (_, i) => i + 1));
      // create() kept the existing bytes.
      assertEquals(await reopened.readBlock(9, 0, PIECE), piece(data, 9));
    } finally {
      reopened.close();
    }
  });
});

Deno.test("piece_store: scan() counts a piece whose real content is all zeros", async () => {
  await withTempDir(async (dir) => {
    // Disk images have zero-filled stretches; such a piece is genuinely held once written.
    const data = content(4 * PIECE);
    data.fill(0, PIECE, 2 * PIECE);
    const meta = await metaFor(data);
    const path = `${dir}/image.iso`;
    await Deno.writeFile(path, data);
    const store = await PieceStore.openForSeeding(path, meta);
    try {
      assertEquals([...(await store.scan()).indices()], [0, 1, 2, 3]);
    } finally {
      store.close();
    }
  });
});

Deno.test("piece_store: openForSeeding serves a complete file and scan() finds it all", async () => {
  await withTempDir(async (dir) => {
    const data = content(5 * PIECE + 3);
    const meta = await metaFor(data);
    const path = `${dir}/seed.iso`;
    await Deno.writeFile(path, data);
    const store = await PieceStore.openForSeeding(path, meta);
    try {
      const have = await store.scan();
      assert(have.complete, "every piece verified");
      assertEquals(await store.readBlock(5, 0, 3), data.slice(5 * PIECE));
      assertEquals(await store.readBlock(2, PIECE - 10, 10), data.slice(3 * PIECE - 10, 3 * PIECE));
    } finally {
      store.close();
    }
  });
});

Deno.test("piece_store: openForSeeding rejects a size mismatch and a missing file", async () => {
  await withTempDir(async (dir) => {
    const data = content(2 * PIECE);
    const meta = await metaFor(data);
    for (const size of [data.length - 1, data.length + 1, 0]) {
      await Deno.writeFile(`${dir}/wrong.iso`, content(size));
      await assertRejects(
        () => PieceStore.openForSeeding(`${dir}/wrong.iso`, meta),
        PieceStoreError,
        `is ${size} bytes`,
      );
    }
    await assertRejects(
      () => PieceStore.openForSeeding(`${dir}/missing.iso`, meta),
      PieceStoreError,
      "No such file",
    );
  });
});

Deno.test("piece_store: create resizes a file of the wrong length", async () => {
  await withTempDir(async (dir) => {
    const data = content(2 * PIECE + 5);
    const meta = await metaFor(data);
    for (const size of [10, 10 * PIECE]) {
      await Deno.writeFile(`${dir}/out.iso`, content(size, 7));
      const store = await PieceStore.create(`${dir}/out.iso`, meta);
      store.close();
      assertEquals((await Deno.stat(`${dir}/out.iso`)).size, data.length);
    }
  });
});

Deno.test("piece_store: create in a missing directory raises PieceStoreError", async () => {
  await withTempDir(async (dir) => {
    const meta = await metaFor(content(PIECE));
    await assertRejects(
      () => PieceStore.create(`${dir}/no/such/dir/out.iso`, meta),
      PieceStoreError,
      "cannot create",
    );
    // A directory where the file should be.
    await Deno.mkdir(`${dir}/isdir`);
    await assertRejects(() => PieceStore.create(`${dir}/isdir`, meta), PieceStoreError);
  });
});

Deno.test("piece_store: concurrent writes and reads do not interleave", async () => {
  await withTempDir(async (dir) => {
    const data = content(16 * PIECE);
    const meta = await metaFor(data);
    const path = `${dir}/out.iso`;
    const store = await PieceStore.create(path, meta);
    try {
      // All writes at once: each seek+write pair must stay together.
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) => store.verifyAndWrite(i, piece(data, i))),
      );
      assertEquals(results, new Array(16).fill(true));
      assertEquals(await Deno.readFile(path), data);
    } finally {
      store.close();
    }
    const reader = await PieceStore.openForSeeding(path, meta);
    try {
      const reads = await Promise.all(
        Array.from({ length: 16 }, (_, i) => reader.readBlock(15 - i, 7, 100)),
      );
      reads.forEach((b, k) => {
        const i = 15 - k;
        assertEquals(b, data.slice(i * PIECE + 7, i * PIECE + 107), `piece ${i}`);
      });
    } finally {
      reader.close();
      reader.close(); // closing twice is harmless
    }
  });
});
