import { type ChokeCandidate, Choker, type IdleCandidate, pickIdleUnchoke } from "../lib/choker.ts";
import { assert, assertEquals } from "./assert.ts";

const peer = (key: string, rate: number, interested = true, connectedAt = 0): ChokeCandidate => ({
  key,
  interested,
  rate,
  connectedAt,
});

/** A deterministic sequence of "random" numbers. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length];
}

Deno.test("choker: regular slots go to the fastest interested peers", () => {
  const cases: { name: string; peers: ChokeCandidate[]; slots: number; regular: string[] }[] = [
    {
      name: "top rates win",
      peers: [peer("a", 1), peer("b", 9), peer("c", 5), peer("d", 7)],
      slots: 2,
      regular: ["b", "d"],
    },
    {
      name: "uninterested peers never get a slot",
      peers: [peer("a", 100, false), peer("b", 1), peer("c", 2)],
      slots: 2,
      regular: ["b", "c"],
    },
    {
      name: "fewer candidates than slots: all unchoked",
      peers: [peer("a", 1)],
      slots: 4,
      regular: ["a"],
    },
    { name: "nobody interested", peers: [peer("a", 5, false)], slots: 4, regular: [] },
  ];
  for (const c of cases) {
    const choker = new Choker({ slots: c.slots, random: () => 0 });
    const unchoked = choker.rechoke(c.peers, 0);
    for (const key of c.regular) assert(unchoked.has(key), `${c.name}: ${key} unchoked`);
    const optimistic = choker.optimistic;
    const extra = [...unchoked].filter((k) => !c.regular.includes(k));
    assertEquals(extra, optimistic === undefined ? [] : [optimistic], `${c.name}: only extra`);
    for (const p of c.peers) {
      if (!p.interested) assert(!unchoked.has(p.key), `${c.name}: ${p.key} stays choked`);
    }
  }
});

Deno.test("choker: the optimistic slot rotates every few rechokes, favouring new peers", () => {
  const now = 100_000;
  const peers = [
    peer("fast", 10),
    peer("old1", 1, true, 0),
    peer("old2", 1, true, 0),
    peer("new", 0, true, now - 1000),
  ];
  // Weights: old1 1, old2 1, new 3 (total 5). 0.1·5 = 0.5 → old1; 0.5·5 = 2.5 → new.
  const choker = new Choker({
    slots: 1,
    optimisticEvery: 3,
    newPeerMs: 60_000,
    random: sequence(0.1, 0.5),
  });
  const first = choker.rechoke(peers, now);
  assertEquals(choker.optimistic, "old1");
  assert(first.has("fast") && first.has("old1") && first.size === 2);
  // The next two rechokes keep the optimistic peer.
  choker.rechoke(peers, now + 10_000);
  choker.rechoke(peers, now + 20_000);
  assertEquals(choker.optimistic, "old1");
  // The third rotates it, here to the newcomer.
  choker.rechoke(peers, now + 30_000);
  assertEquals(choker.optimistic, "new");
});

Deno.test("choker: newcomers are three times as likely to get the optimistic slot", () => {
  const peers = [peer("fast", 10), peer("old", 1, true, 0), peer("new", 1, true, 95_000)];
  let draws = 0;
  let forNew = 0;
  for (let i = 0; i < 400; i++) {
    const choker = new Choker({ slots: 1, random: () => (i + 0.5) / 400 });
    choker.rechoke(peers, 100_000);
    draws++;
    if (choker.optimistic === "new") forNew++;
  }
  assertEquals(forNew / draws, 0.75);
});

Deno.test("choker: a peer that leaves the optimistic slot's pool is replaced at once", () => {
  const choker = new Choker({ slots: 1, optimisticEvery: 10, random: () => 0 });
  choker.rechoke([peer("a", 5), peer("b", 1)], 0);
  assertEquals(choker.optimistic, "b");
  // b lost interest: the slot does not wait for the rotation.
  choker.rechoke([peer("a", 5), peer("b", 1, false), peer("c", 1)], 10_000);
  assertEquals(choker.optimistic, "c");
});

Deno.test("choker: an idle uplink unchokes one more interested peer, the best giver first", () => {
  const idle = (key: string, rate: number, unchoked: boolean, interested = true, at = 0) => ({
    key,
    rate,
    unchoked,
    interested,
    connectedAt: at,
  });
  const cases: { name: string; peers: IdleCandidate[]; max: number; want: string | undefined }[] = [
    {
      name: "the choked peer that gives us most",
      peers: [idle("a", 0, true), idle("b", 2, false), idle("c", 5, false), idle("d", 9, true)],
      max: 9,
      want: "c",
    },
    {
      name: "uninterested peers are left alone",
      peers: [idle("a", 0, true), idle("b", 9, false, false), idle("c", 1, false)],
      max: 9,
      want: "c",
    },
    {
      name: "a tie goes to the newest",
      peers: [idle("a", 0, false, true, 10), idle("b", 0, false, true, 30), idle("c", 0, false)],
      max: 9,
      want: "b",
    },
    {
      name: "no more than the cap",
      peers: [idle("a", 0, true), idle("b", 0, true), idle("c", 5, false)],
      max: 2,
      want: undefined,
    },
    { name: "nobody waiting", peers: [idle("a", 0, true)], max: 9, want: undefined },
  ];
  for (const c of cases) assertEquals(pickIdleUnchoke(c.peers, c.max), c.want, c.name);
});
