/**
 * The Worker side of {@linkcode fuzzIsolated}: runs one target of `lib/fuzz.ts` and publishes,
 * before each input, the counts so far and the input itself in the buffer it shares with the
 * watchdog, so a hang or a dying worker still names the input that did it. The buffer starts
 * with eight int32s: tried, rejected, accepted, crashes, the input's length, and a flag set once
 * the first input is under way; the input's bytes follow from byte 32.
 *
 * @example
 * ```ts
 * import { fuzzIsolated } from "./fuzz.ts"; // starts this module as a Worker
 * const report = await fuzzIsolated("bencode", { seed: 1, iterations: 1000 });
 * ```
 * @module
 */

import { fuzzTarget, type IsolatedOptions, makeTargets, type TargetReport } from "./fuzz.ts";

/** What the watchdog sends to start a run. */
interface Start {
  name: string;
  options: IsolatedOptions;
  sab: SharedArrayBuffer;
}

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<Start>) => void) | null;
  postMessage(m: { report?: TargetReport; error?: string }): void;
};

scope.onmessage = async (e) => {
  const { name, options, sab } = e.data;
  const head = new Int32Array(sab, 0, 8);
  const bytes = new Uint8Array(sab, 32);
  try {
    const target = (await makeTargets()).find((t) => t.name === name);
    if (!target) throw new Error(`no fuzz target named ${name}`);
    const report = await fuzzTarget(target, {
      ...options,
      onInput: (input, soFar) => {
        const n = Math.min(input.length, bytes.length);
        bytes.set(input.subarray(0, n));
        Atomics.store(head, 4, n);
        Atomics.store(head, 1, soFar.rejected);
        Atomics.store(head, 2, soFar.accepted);
        Atomics.store(head, 3, soFar.crashes);
        Atomics.store(head, 0, soFar.tried);
        Atomics.store(head, 5, 1);
      },
    });
    scope.postMessage({ report });
  } catch (err) {
    scope.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
};
