/**
 * A short run of the fuzzer (`lib/fuzz.ts`, `lib/fuzz_live.ts`; `deno task fuzz` runs it longer):
 * two thousand seeded inputs through every parser in-process (a thousand XML-RPC bodies), and a
 * few hundred against the real tracker and a real seeder, with zero crashes and both processes up
 * and answering. Also checks the fuzzer itself: the same seed gives the same inputs, every kind
 * of crash is told apart from a clean rejection, and the watchdog names the input of a worker
 * stuck in a loop.
 *
 * @example
 * ```sh
 * deno test -P tests/fuzz_test.ts
 * ```
 * @module
 */

import {
  crashReason,
  fuzzIsolated,
  FuzzRng,
  type FuzzTarget,
  fuzzTarget,
  InputGenerator,
  makeTargets,
  TARGET_NAMES,
} from "../lib/fuzz.ts";
import { fuzzLive, LiveSwarm } from "../lib/fuzz_live.ts";
import { assert, assertEquals } from "./assert.ts";
import { STUCK_INPUT } from "./fuzz_hang_worker.ts";

const SEED = 20261125;

Deno.test("fuzz: the same seed gives the same inputs, another seed others", async () => {
  const t = (await makeTargets()).find((x) => x.name === "bencode")!;
  const run = (seed: number) => {
    const g = new InputGenerator(t.corpus, t.dialect, new FuzzRng(seed));
    return Array.from({ length: 200 }, () => g.next());
  };
  const a = run(5);
  assertEquals(run(5), a);
  const b = run(6);
  assert(b.some((x, i) => x.length !== a[i].length), "seed 6 differs from seed 5");
  // The mutations reach past the corpus: sizes vary, and some inputs are large.
  assert(new Set(a.map((x) => x.length)).size > 50, "varied sizes");
});

Deno.test("fuzz: crashes are told apart from clean rejections", async () => {
  const corpus = [Uint8Array.of(1, 2, 3)];
  const dialect = { maxLength: 64, textNumbers: false, tokens: corpus, giants: corpus };
  const target = (run: FuzzTarget["run"]): FuzzTarget => ({
    name: "probe",
    description: "a probe",
    corpus,
    dialect,
    run,
  });
  const clean = await fuzzTarget(
    target((i) => (i.length % 2 ? "accepted" : "rejected")),
    { seed: 1, iterations: 300 },
  );
  assertEquals(clean.crashes, 0);
  assertEquals(clean.tried, 300);
  assertEquals(clean.accepted + clean.rejected, 300);
  assert(clean.accepted > 0 && clean.rejected > 0, "both outcomes occur");

  const recurse = (n: number): number => recurse(n + 1) + 1;
  const cases: [string, FuzzTarget["run"], string][] = [
    ["TypeError", () => {
      throw new TypeError("x is undefined");
    }, "TypeError: x is undefined"],
    ["stack", () => String(recurse(0)) as "accepted", "stack overflow:"],
    ["allocation", () => {
      new Uint8Array(2 ** 53);
      return "accepted";
    }, "unbounded allocation:"],
    ["non-Error", () => {
      throw "a string";
    }, "non-Error thrown: a string"],
    ["async rejection", () => Promise.reject(new RangeError("bad")), "RangeError: bad"],
  ];
  for (const [what, run, reason] of cases) {
    const r = await fuzzTarget(target(run), { seed: 1, iterations: 5 });
    assertEquals(r.crashes, 5, what);
    assert(r.firstCrash!.reason.startsWith(reason), `${what}: ${r.firstCrash!.reason}`);
    // The first input is the corpus itself.
    assertEquals(r.firstCrash!.input, corpus[0], what);
  }
  const slow = await fuzzTarget(
    target(() => {
      const until = performance.now() + 30;
      while (performance.now() < until) { /* busy */ }
      return "accepted";
    }),
    { seed: 1, iterations: 2, hangMs: 10 },
  );
  assertEquals(slow.crashes, 2);
  assert(slow.firstCrash!.reason.startsWith("hang: took"), slow.firstCrash!.reason);
  assertEquals(crashReason(new Error("one\ntwo")), "Error: one");
});

Deno.test("fuzz: the watchdog ends a worker stuck in a loop and names its input", async () => {
  const r = await fuzzIsolated(
    "bencode",
    { seed: 1, iterations: 10, stallMs: 1000 },
    new URL("./fuzz_hang_worker.ts", import.meta.url),
  );
  assertEquals([r.tried, r.rejected, r.accepted, r.crashes], [4, 2, 1, 1]);
  assert(r.firstCrash!.reason.startsWith("hang: no progress"), r.firstCrash!.reason);
  assertEquals(r.firstCrash!.input, STUCK_INPUT);
});

Deno.test("fuzz: every parser survives two thousand seeded inputs", async () => {
  for (const name of TARGET_NAMES) {
    const iterations = name === "xmlrpc" ? 1000 : 2000;
    const r = await fuzzIsolated(name, { seed: SEED, iterations });
    const detail = r.firstCrash
      ? `: ${r.firstCrash.reason} (${r.firstCrash.input.length}-byte input)`
      : "";
    assertEquals(r.crashes, 0, `${name} crashed${detail}`);
    assertEquals(r.tried, iterations, name);
    assertEquals(r.accepted + r.rejected, iterations, name);
    // Both outcomes: the mutations neither stay valid nor all break the format at once.
    assert(r.accepted > 0 && r.rejected > 0, `${name}: ${r.accepted} accepted, ${r.rejected} not`);
  }
});

Deno.test("fuzz: a real tracker and seeder take a few hundred hostile inputs and stay up", async () => {
  const swarm = await LiveSwarm.start();
  try {
    const report = await fuzzLive(swarm, { seed: SEED, iterations: 100, batch: 50 });
    for (const e of report.endpoints) {
      const detail = e.firstError ? `: ${e.firstError.reason}` : "";
      assertEquals(e.errors, 0, `${e.endpoint} answered badly${detail}`);
      assertEquals(e.tried, 100, e.endpoint);
      assertEquals(e.accepted + e.rejected, 100, e.endpoint);
      assert(e.rejected > 0, `${e.endpoint}: some inputs are refused`);
    }
    for (const p of report.processes) {
      assert(p.up, `${p.name}: ${p.how}`);
      assertEquals(p.stderr, [], `${p.name} wrote to stderr`);
    }
    assertEquals(report.checks, 2, "a liveness check after each of the two batches");
    // And once more from here, after the last batch.
    await swarm.check();
  } finally {
    await swarm.stop();
  }
});
