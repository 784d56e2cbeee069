/**
 * A fuzz worker that hangs on purpose, for the watchdog test in `tests/fuzz_test.ts`: it
 * publishes one input in the shared buffer the way `lib/fuzz_worker.ts` does, then spins
 * forever, as a parser stuck in an endless loop would.
 *
 * @module
 */

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<{ sab: SharedArrayBuffer }>) => void) | null;
};

/** The input it claims to be stuck on. */
export const STUCK_INPUT: Uint8Array = new TextEncoder().encode("d1:ai1e1:bllllllll");

scope.onmessage = (e) => {
  const head = new Int32Array(e.data.sab, 0, 8);
  new Uint8Array(e.data.sab, 32).set(STUCK_INPUT);
  Atomics.store(head, 4, STUCK_INPUT.length);
  Atomics.store(head, 1, 2); // two rejected
  Atomics.store(head, 2, 1); // one accepted
  Atomics.store(head, 0, 3); // three tried before this one
  Atomics.store(head, 5, 1); // under way
  for (;;) {
    // Stuck.
  }
};
