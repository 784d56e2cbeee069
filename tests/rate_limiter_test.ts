import { RateLimiter, TokenBucket } from "../lib/rate_limiter.ts";
import { assert, assertEquals } from "./assert.ts";

Deno.test("rate_limiter: the bucket refills at its rate up to its burst", () => {
  const cases: { name: string; steps: [number, number, number][] }[] = [
    // [time ms, want, expected taken]
    { name: "starts empty", steps: [[0, 100, 0]] },
    { name: "one second gives rate", steps: [[1000, 5000, 1000]] },
    { name: "never more than the burst", steps: [[60_000, 100_000, 2000]] },
    { name: "partial takes", steps: [[500, 200, 200], [500, 400, 300], [1000, 1000, 500]] },
  ];
  for (const c of cases) {
    const b = new TokenBucket(1000, 2000, 0);
    for (const [t, want, expected] of c.steps) {
      assertEquals(b.take(want, t), expected, `${c.name} at ${t} ms`);
    }
  }
});

Deno.test("rate_limiter: waitFor and giveBack", () => {
  const b = new TokenBucket(1000, 2000, 0);
  assertEquals(b.waitFor(500, 0), 500);
  assertEquals(b.waitFor(500, 250), 250);
  assertEquals(b.take(500, 500), 500);
  b.giveBack(200);
  assertEquals(b.available(500), 200);
});

Deno.test("rate_limiter: a shared limiter holds the rate across callers, in order", async () => {
  const rate = 2_000_000; // bytes/s
  const limiter = new RateLimiter(rate);
  const t0 = performance.now();
  let granted = 0;
  const order: number[] = [];
  // Three "connections" drawing 16 KiB at a time until 600 kB moved in all.
  await Promise.all([0, 1, 2].map(async (id) => {
    while (granted < 600_000) {
      // Read the grant first: `granted += await …` would read `granted` before waiting.
      const n = await limiter.acquire(16384);
      granted += n;
      order.push(id);
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const achieved = granted / seconds;
  limiter.close();
  assert(achieved <= rate * 1.1, `achieved ${achieved.toFixed(0)} B/s, cap ${rate}`);
  assert(achieved >= rate * 0.8, `achieved ${achieved.toFixed(0)} B/s, cap ${rate}`);
  // Fair: every connection got grants throughout.
  for (const id of [0, 1, 2]) assert(order.filter((o) => o === id).length >= 8, `caller ${id}`);
});

Deno.test("rate_limiter: close releases every waiter", async () => {
  const limiter = new RateLimiter(1000);
  const waiting = [limiter.acquire(16384), limiter.acquire(16384)];
  limiter.close();
  assertEquals(await Promise.all(waiting), [16384, 16384]);
});
