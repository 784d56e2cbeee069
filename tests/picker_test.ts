/**
 * Tests for `lib/picker.ts`: rarest first with a deterministic tie-break, uniform random ties,
 * started pieces first, never asking for what we hold or the peer lacks, releasing blocks,
 * rejecting unwanted blocks, endgame duplicates and cancels, failed pieces, short last pieces.
 *
 * @example
 * ```sh
 * deno test -P tests/picker_test.ts
 * ```
 * @module
 */

import { Bitfield } from "../lib/bitfield.ts";
import { type BlockRequest, PiecePicker } from "../lib/picker.ts";
import { BLOCK_LENGTH } from "../lib/wire.ts";
import { mulberry32 } from "./random.ts";
import { assert, assertEquals } from "./assert.ts";

const B = BLOCK_LENGTH;

function bits(size: number, indices: number[]): Bitfield {
  const bf = new Bitfield(size);
  for (const i of indices) bf.set(i);
  return bf;
}

/** A layout of `pieceCount` pieces of `blocks` full blocks each. */
function layout(pieceCount: number, blocks = 1) {
  return { pieceCount, pieceLength: blocks * B, length: pieceCount * blocks * B };
}

const pieces = (reqs: BlockRequest[]) => reqs.map((r) => r.index);

Deno.test("picker: rarest first, ties broken by the injected random", () => {
  const cases: {
    name: string;
    availability: number[];
    random: number;
    have?: number[];
    peerHas?: number[];
    order: number[];
  }[] = [
    // random() near 1 never replaces the first of equals: ties go to the lowest index.
    { name: "distinct", availability: [3, 1, 2, 4], random: 0.999, order: [1, 2, 0, 3] },
    { name: "ties, keep first", availability: [3, 1, 2, 1], random: 0.999, order: [1, 3, 2, 0] },
    // random() of 0 always replaces: ties go to the highest index.
    { name: "ties, take last", availability: [3, 1, 2, 1], random: 0, order: [3, 1, 2, 0] },
    { name: "all equal, first", availability: [2, 2, 2, 2], random: 0.999, order: [0, 1, 2, 3] },
    { name: "all equal, last", availability: [2, 2, 2, 2], random: 0, order: [3, 2, 1, 0] },
    {
      name: "held pieces skipped",
      availability: [1, 2, 3, 4],
      random: 0.999,
      have: [0, 2],
      order: [1, 3],
    },
    {
      name: "peer's missing pieces skipped",
      availability: [1, 2, 3, 4],
      random: 0.999,
      peerHas: [2, 3],
      order: [2, 3],
    },
  ];
  for (const c of cases) {
    const n = c.availability.length;
    const picker = new PiecePicker(layout(n), bits(n, c.have ?? []), () => c.random);
    for (let i = 0; i < n; i++) for (let k = 0; k < c.availability[i]; k++) picker.peerHas(i);
    for (let i = 0; i < n; i++) assertEquals(picker.availability(i), c.availability[i]);
    const theirs = c.peerHas ? bits(n, c.peerHas) : Bitfield.full(n);
    assertEquals(pieces(picker.request("p", theirs, n)), c.order, c.name);
  }
});

Deno.test("picker: availability follows peers joining, leaving and announcing", () => {
  const picker = new PiecePicker(layout(4), new Bitfield(4));
  const a = bits(4, [0, 1]);
  const b = bits(4, [1, 2]);
  picker.peerJoined(a);
  picker.peerJoined(b);
  picker.peerHas(3);
  assertEquals([0, 1, 2, 3].map((i) => picker.availability(i)), [1, 2, 1, 1]);
  picker.peerLeft(a);
  assertEquals([0, 1, 2, 3].map((i) => picker.availability(i)), [0, 1, 1, 1]);
  picker.peerLeft(a); // never below zero
  assertEquals(picker.availability(0), 0);
});

Deno.test("picker: the random tie-break covers every equally rare piece, evenly", () => {
  const n = 8;
  const runs = 4000;
  const random = mulberry32(42);
  const counts = new Array(n).fill(0);
  for (let run = 0; run < runs; run++) {
    const picker = new PiecePicker(layout(n), new Bitfield(n), random);
    picker.peerJoined(Bitfield.full(n));
    counts[picker.request("p", Bitfield.full(n), 1)[0].index]++;
  }
  for (let i = 0; i < n; i++) {
    // Expected 500 each; a fair pick stays well within ±25% (about 6 standard deviations).
    assert(counts[i] > 375 && counts[i] < 625, `piece ${i} picked ${counts[i]} times: ${counts}`);
  }
  // With the default Math.random the choice also varies.
  const seen = new Set<number>();
  for (let run = 0; run < 200; run++) {
    const picker = new PiecePicker(layout(n), new Bitfield(n));
    seen.add(picker.request("p", Bitfield.full(n), 1)[0].index);
  }
  assertEquals(seen.size, n);
});

Deno.test("picker: started pieces are finished before new ones are started", () => {
  const n = 4;
  const picker = new PiecePicker(layout(n, 4), new Bitfield(n), () => 0.999);
  // Piece 3 is the rarest at first: peer a starts it.
  for (const i of [0, 0, 1, 1, 2, 2]) picker.peerHas(i);
  picker.peerHas(3);
  const first = picker.request("a", Bitfield.full(n), 2);
  assertEquals(first, [{ index: 3, begin: 0, length: B }, { index: 3, begin: B, length: B }]);
  // Now piece 3 is the most common, but its remaining blocks still come first.
  for (let k = 0; k < 5; k++) picker.peerHas(3);
  const second = picker.request("b", Bitfield.full(n), 3);
  assertEquals(second, [
    { index: 3, begin: 2 * B, length: B },
    { index: 3, begin: 3 * B, length: B },
    { index: 0, begin: 0, length: B },
  ]);
  assertEquals(picker.activePieces.sort(), [0, 3]);
});

Deno.test("picker: never requests pieces we have or the peer lacks", () => {
  const n = 64;
  const random = mulberry32(7);
  for (let trial = 0; trial < 50; trial++) {
    const have = new Bitfield(n);
    const theirs = new Bitfield(n);
    for (let i = 0; i < n; i++) {
      if (random() < 0.4) have.set(i);
      if (random() < 0.6) theirs.set(i);
    }
    const picker = new PiecePicker(layout(n, 2), have, random);
    picker.peerJoined(theirs);
    const got = picker.request("p", theirs, 1000);
    const wanted = [...theirs.indices()].filter((i) => !have.has(i));
    for (const r of got) {
      assert(theirs.has(r.index), `asked for ${r.index}, which the peer lacks`);
      assert(!have.has(r.index), `asked for ${r.index}, which we hold`);
    }
    // Every wanted block is asked for exactly once.
    assertEquals(got.length, wanted.length * 2);
    assertEquals(new Set(got.map((r) => `${r.index}:${r.begin}`)).size, got.length);
    assertEquals(picker.interesting(theirs), wanted.length > 0);
  }
});

Deno.test("picker: a peer with nothing new is not interesting and gets no requests", () => {
  const picker = new PiecePicker(layout(4), bits(4, [0, 1]));
  const theirs = bits(4, [0, 1]);
  assertEquals(picker.interesting(theirs), false);
  assertEquals(picker.request("p", theirs, 10), []);
  assertEquals(picker.interesting(bits(4, [2])), true);
  assertEquals(picker.request("p", Bitfield.full(4), 0), [], "max 0 asks for nothing");
  // Once everything is held, nobody is interesting.
  const done = new PiecePicker(layout(2), Bitfield.full(2));
  assertEquals(done.interesting(Bitfield.full(2)), false);
});

Deno.test("picker: release() returns a peer's blocks to the pool", () => {
  const n = 2;
  const picker = new PiecePicker(layout(n, 4), new Bitfield(n), () => 0.999);
  const all = Bitfield.full(n);
  const asked = picker.request("a", all, 3);
  assertEquals(picker.outstanding("a"), 3);
  // Releasing just one block.
  assertEquals(picker.release("a", asked[1]), [asked[1]]);
  assertEquals(picker.outstanding("a"), 2);
  assertEquals(picker.release("a", asked[1]), [], "already released");
  // Peer b gets the released block first, then the next free one.
  assertEquals(picker.request("b", all, 2), [asked[1], { index: 0, begin: 3 * B, length: B }]);
  // Releasing everything a still had.
  const released = picker.release("a");
  assertEquals(released, [asked[0], asked[2]]);
  assertEquals(picker.outstanding("a"), 0);
  assertEquals(picker.release("a"), []);
  assertEquals(picker.release("nobody"), []);
  // The released blocks can now be fetched again, by anyone.
  assertEquals(picker.request("c", all, 2), [asked[0], asked[2]]);
});

Deno.test("picker: received() accepts asked-for blocks and rejects every other", () => {
  const picker = new PiecePicker(layout(2, 2), new Bitfield(2), () => 0.999);
  const all = Bitfield.full(2);
  const [b0, b1] = picker.request("a", all, 2); // piece 0, blocks 0 and 1
  assertEquals([b0.index, b0.begin, b1.index, b1.begin], [0, 0, 0, B]);
  const rejected = { accepted: false, pieceComplete: false, cancel: [] };
  const table: [string, string, number, number, number][] = [
    ["unsolicited: another peer", "b", 0, 0, B],
    ["piece not started", "a", 1, 0, B],
    ["misaligned begin", "a", 0, 100, B],
    ["begin past the piece", "a", 0, 2 * B, B],
    ["wrong length", "a", 0, 0, B - 1],
    ["index out of range", "a", 99, 0, B],
  ];
  for (const [why, peer, index, begin, length] of table) {
    assertEquals(picker.received(peer, index, begin, length), rejected, why);
  }
  assertEquals(picker.outstanding("a"), 2, "rejected blocks leave a's requests in place");
  assertEquals(picker.received("a", 0, 0, B), { accepted: true, pieceComplete: false, cancel: [] });
  assertEquals(picker.received("a", 0, 0, B), rejected, "duplicate");
  assertEquals(picker.received("a", 0, B, B), { accepted: true, pieceComplete: true, cancel: [] });
  assertEquals(picker.received("a", 0, B, B), rejected, "after the piece completed");
  assertEquals(picker.outstanding("a"), 0);
});

Deno.test("picker: a rejected block stays asked of its peer, so release() still frees it", () => {
  const picker = new PiecePicker(layout(2, 2), new Bitfield(2), () => 0.999);
  const all = Bitfield.full(2);
  const asked = picker.request("a", all, 2);
  // A block of the wrong length: dropped, and a still owes the real one.
  assertEquals(picker.received("a", 0, 0, B - 1).accepted, false);
  assertEquals(picker.outstanding("a"), 2);
  // a chokes us: both blocks go back to the pool and b is asked for them.
  assertEquals(picker.release("a"), asked);
  assertEquals(picker.request("b", all, 2), asked);
});

Deno.test("picker: endgame doubles up on in-flight blocks and names the losers to cancel", () => {
  const picker = new PiecePicker(layout(2, 2), new Bitfield(2), () => 0.999);
  const all = Bitfield.full(2);
  assertEquals(picker.endgame, false);
  const a = picker.request("a", all, 3); // piece 0 both blocks, piece 1 block 0
  assertEquals(a.length, 3);
  assertEquals(picker.endgame, true, "every missing piece is started");
  // b gets the one free block first, then duplicates of a's blocks.
  const b = picker.request("b", all, 10);
  assertEquals(b, [{ index: 1, begin: B, length: B }, a[0], a[1], a[2]]);
  assertEquals(picker.outstanding("b"), 4);
  // The same peer is never asked twice for a block.
  assertEquals(picker.request("b", all, 10), []);
  // b delivers piece 0 block 0 first: a must be sent a cancel.
  assertEquals(picker.received("b", 0, 0, B), {
    accepted: true,
    pieceComplete: false,
    cancel: ["a"],
  });
  assertEquals(picker.outstanding("a"), 2);
  // a's copy arrives anyway: a duplicate, dropped.
  assertEquals(picker.received("a", 0, 0, B).accepted, false);
  // a delivers 0/1 first: b gets the cancel, and the piece is complete.
  assertEquals(picker.received("a", 0, B, B), {
    accepted: true,
    pieceComplete: true,
    cancel: ["b"],
  });
  assertEquals(picker.outstanding("a"), 1);
  assertEquals(picker.outstanding("b"), 2);
});

Deno.test("picker: endgame release keeps a block requested while another peer has it", () => {
  const picker = new PiecePicker(layout(1), new Bitfield(1));
  const all = Bitfield.full(1);
  picker.request("a", all, 1);
  picker.request("b", all, 1);
  picker.release("a");
  // b still has it in flight, so c gets a duplicate only because of endgame, not a free block.
  assertEquals(picker.request("c", all, 1), [{ index: 0, begin: 0, length: B }]);
  assertEquals(picker.received("b", 0, 0, B), {
    accepted: true,
    pieceComplete: true,
    cancel: ["c"],
  });
});

Deno.test("picker: pieceFailed() lets the piece be fetched again; pieceVerified() does not", () => {
  const picker = new PiecePicker(layout(2, 2), new Bitfield(2), () => 0.999);
  const all = Bitfield.full(2);
  const first = picker.request("a", all, 2);
  assertEquals(pieces(first), [0, 0]);
  picker.received("a", 0, 0, B);
  assertEquals(picker.received("a", 0, B, B).pieceComplete, true);
  // While piece 0 waits for its hash check nobody is asked for it.
  assertEquals(pieces(picker.request("b", all, 10)), [1, 1]);
  picker.release("b");
  picker.pieceFailed(0);
  // Failed: both its blocks are wanted again, from anyone, a included.
  const again = picker.request("a", bits(2, [0]), 2);
  assertEquals(again, first);
  picker.received("a", 0, 0, B);
  assertEquals(picker.received("a", 0, B, B).pieceComplete, true);
  picker.pieceVerified(0);
  assertEquals(picker.activePieces, [1]);
  // Verified: never asked for again; only piece 1 is left.
  assertEquals(pieces(picker.request("c", all, 10)), [1, 1]);
  assertEquals(picker.interesting(bits(2, [0])), false);
});

Deno.test("picker: short last piece and short last block have the right lengths", () => {
  const cases: {
    name: string;
    pieceLength: number;
    length: number;
    last: number;
    lastBlocks: number[];
  }[] = [
    {
      name: "last piece of one and a bit blocks",
      pieceLength: 2 * B,
      length: 4 * B + B + 3616,
      last: B + 3616,
      lastBlocks: [B, 3616],
    },
    {
      name: "last piece shorter than a block",
      pieceLength: 2 * B,
      length: 2 * B + 100,
      last: 100,
      lastBlocks: [100],
    },
    {
      name: "piece length not a multiple of the block",
      pieceLength: B + 1000,
      length: 2 * (B + 1000) + 1,
      last: 1,
      lastBlocks: [1],
    },
    {
      name: "pieces smaller than a block",
      pieceLength: 1000,
      length: 2500,
      last: 500,
      lastBlocks: [500],
    },
    { name: "exact multiple", pieceLength: 2 * B, length: 4 * B, last: 2 * B, lastBlocks: [B, B] },
  ];
  for (const c of cases) {
    const pieceCount = Math.ceil(c.length / c.pieceLength);
    const picker = new PiecePicker(
      { pieceCount, pieceLength: c.pieceLength, length: c.length },
      new Bitfield(pieceCount),
      () => 0.999,
    );
    const last = pieceCount - 1;
    assertEquals(picker.pieceLength(last), c.last, c.name);
    assertEquals(picker.blockCount(last), c.lastBlocks.length, c.name);
    const all = Bitfield.full(pieceCount);
    const reqs = picker.request("p", all, 1000);
    const lastReqs = reqs.filter((r) => r.index === last);
    assertEquals(lastReqs.map((r) => r.length), c.lastBlocks, c.name);
    // Every request stays inside its piece and the blocks tile the whole file.
    let total = 0;
    for (const r of reqs) {
      assert(r.begin + r.length <= picker.pieceLength(r.index), `${c.name}: inside the piece`);
      total += r.length;
    }
    assertEquals(total, c.length, `${c.name}: blocks cover the file`);
    // A full-size block where the short one belongs is rejected; the right length accepted.
    const tail = lastReqs[lastReqs.length - 1];
    if (tail.length < B) {
      assertEquals(picker.received("p", last, tail.begin, B).accepted, false, c.name);
    }
    assertEquals(picker.received("p", last, tail.begin, tail.length).accepted, true, c.name);
  }
});

Deno.test("picker: a whole download completes through the public API", () => {
  // Two peers each holding half, requesting in rounds until everything is verified.
  const n = 10;
  const lay = { pieceCount: n, pieceLength: 3 * B, length: n * 3 * B - 5000 };
  const have = new Bitfield(n);
  const picker = new PiecePicker(lay, have, mulberry32(3));
  const peers = { a: bits(n, [0, 1, 2, 3, 4, 5]), b: bits(n, [4, 5, 6, 7, 8, 9]) };
  for (const bf of Object.values(peers)) picker.peerJoined(bf);
  let rounds = 0;
  while (!have.complete && rounds++ < 100) {
    for (const [name, bf] of Object.entries(peers)) {
      for (const r of picker.request(name, bf, 4)) {
        const res = picker.received(name, r.index, r.begin, r.length);
        if (res.pieceComplete) picker.pieceVerified(r.index);
      }
    }
  }
  assert(have.complete, `complete after ${rounds} rounds`);
  assertEquals(picker.activePieces, []);
  assertEquals(picker.outstanding("a") + picker.outstanding("b"), 0);
});

Deno.test("picker: a piece that failed with several senders is fetched from one peer only", () => {
  const picker = new PiecePicker(layout(1, 4), new Bitfield(1), () => 0);
  const all = bits(1, [0]);
  picker.peerJoined(all);
  picker.peerJoined(all);
  // First attempt: two peers share the piece's blocks.
  const a1 = picker.request("a", all, 2);
  const b1 = picker.request("b", all, 2);
  assertEquals([a1.length, b1.length], [2, 2]);
  for (const r of a1) picker.received("a", r.index, r.begin, r.length);
  for (const r of b1) picker.received("b", r.index, r.begin, r.length);
  picker.pieceFailed(0, true);
  // Second attempt: whoever asks first gets every block; the other gets none, even in endgame.
  assertEquals(picker.request("b", all, 4).length, 4);
  assertEquals(picker.request("a", all, 4), []);
  // If that peer chokes us, the piece may go to one other peer.
  picker.release("b");
  assertEquals(picker.request("a", all, 4).length, 4);
  assertEquals(picker.request("b", all, 4), []);
});
