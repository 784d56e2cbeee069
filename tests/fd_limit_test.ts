/**
 * The open-files check: the pure decisions of `lib/fd_limit.ts`, its real measurement under a
 * real `ulimit -n`, and the real `peer.ts` and `swarm.ts` started under a low limit: a peer that
 * has room for fewer connections says so in one line and still downloads an identical copy, one
 * that has room for none exits 1 with one sentence, and `swarm.ts` refuses `--leechers` it
 * cannot fit before starting anything.
 *
 * @example
 * ```sh
 * deno test -P tests/fd_limit_test.ts
 * ```
 * @module
 */

import {
  FD_RESERVE,
  fitPeers,
  freeDescriptors,
  swarmFdNeeds,
  swarmFdProblem,
} from "../lib/fd_limit.ts";
import { entryPath, freePort, PERMISSIONS } from "../lib/process.ts";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { assertSameFile, Proc, START_TIMEOUT_MS, Swarm } from "./swarm_helpers.ts";

/** `deno run` arguments under `sh -c 'ulimit -n LIMIT; exec …'`, so only that child is limited. */
function underLimit(limit: number, denoArgs: string[], cwd?: string): Deno.ChildProcess {
  return new Deno.Command("sh", {
    args: ["-c", 'ulimit -n "$0" && exec "$@"', String(limit), Deno.execPath(), ...denoArgs],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** `peer.ts ARGS` as `spawnEntry` runs it, under `ulimit -n LIMIT`. */
function peerUnderLimit(limit: number, args: string[]): Deno.ChildProcess {
  return underLimit(limit, [
    "run",
    "--quiet",
    "--no-prompt",
    ...PERMISSIONS.peer,
    entryPath("peer"),
    ...args,
  ]);
}

/** The first stderr line must be one sentence, with no stack trace after it. */
function assertOneSentence(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  assertEquals(lines.length, 1, `one line on stderr:\n${stderr}`);
  assert(lines[0].startsWith("error: "), `starts with "error: ": ${lines[0]}`);
  const msg = lines[0].slice("error: ".length);
  assert(!/[.!?]['")]?\s+\S/.test(msg), `one sentence: ${msg}`);
  return msg;
}

Deno.test("fd limit: a peer keeps every connection when there is room, fewer or none otherwise", () => {
  assertEquals(fitPeers(50, undefined), { kind: "fits" }, "not measurable: go on as asked");
  assertEquals(fitPeers(50, 50 + FD_RESERVE), { kind: "fits" });
  const lowered = fitPeers(50, 43);
  assertEquals(lowered.kind === "lowered" && lowered.maxPeers, 43 - FD_RESERVE);
  assertStringIncludes(
    lowered.kind === "lowered" ? lowered.message : "",
    "keeping at most 11 peer",
  );
  assertStringIncludes(lowered.kind === "lowered" ? lowered.message : "", "ulimit -n");
  assertEquals(fitPeers(50, FD_RESERVE + 1).kind === "lowered", true, "one connection still fits");
  const none = fitPeers(50, FD_RESERVE);
  assertEquals(none.kind, "cannot");
  assertStringIncludes(none.kind === "cannot" ? none.message : "", `room for only ${FD_RESERVE}`);
  assertEquals(fitPeers(4, 10, 4), { kind: "fits" }, "a smaller reserve");
});

Deno.test("fd limit: swarm.ts refuses --leechers that cannot fit, naming the need", () => {
  assertEquals(swarmFdProblem(40, undefined), undefined, "not measurable: go on");
  const { runner, peer } = swarmFdNeeds(10);
  assertEquals(swarmFdProblem(10, Math.max(runner, peer)), undefined);
  const msg = swarmFdProblem(10, 43) ?? "";
  assertStringIncludes(msg, `--leechers 10 needs about ${runner} open files to run 12 processes`);
  assertStringIncludes(msg, "room for only 43");
  // One leecher: each peer's own connections and reserve are the larger need.
  const one = swarmFdNeeds(1);
  assert(one.peer > one.runner, "one leecher: the peers need more than the runner");
  assertStringIncludes(
    swarmFdProblem(1, one.peer - 1) ?? "",
    `about ${one.peer} open files in each peer`,
  );
  assert(swarmFdNeeds(40).runner > swarmFdNeeds(3).runner, "more leechers need more");
});

Deno.test("fd limit: freeDescriptors counts the room a real ulimit -n leaves", async () => {
  assertEquals(freeDescriptors(10), 10, "this test process has room for 10 more files");
  const probe = `import { freeDescriptors } from ${
    JSON.stringify(new URL("../lib/fd_limit.ts", import.meta.url).href)
  };
    console.log(JSON.stringify([freeDescriptors(1000), freeDescriptors(1000), freeDescriptors(5)]));`;
  const out = await underLimit(64, ["eval", "--quiet", probe]).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const [first, again, small] = JSON.parse(text) as number[];
  assert(first > 0 && first < 64, `some but not all of 64: ${first}`);
  assertEquals(again, first, "the probe closes every file it opened");
  assertEquals(small, 5, "counted only up to what was asked");
});

Deno.test("fd limit: a leecher under ulimit -n 64 keeps fewer peers, says so, and downloads", async () => {
  const swarm = await Swarm.create();
  let leecher: Proc | undefined;
  try {
    await swarm.startTracker();
    await swarm.startSeeder();
    const port = freePort();
    leecher = new Proc("leecher (ulimit -n 64)", peerUnderLimit(64, swarm.peerArgs(port, false)));
    const line = await leecher.waitForLine(/open-files limit/, START_TIMEOUT_MS);
    assert(
      /^the open-files limit leaves room for \d+ more files: keeping at most \d+ peer connections instead of 50 \(raise it with `ulimit -n`\)$/
        .test(line),
      line,
    );
    await leecher.waitForLine(/^DOWNLOAD COMPLETE! /);
    await assertSameFile(swarm.copyPath(port), swarm.seedPath);
  } finally {
    await leecher?.stop();
    await swarm.close();
  }
});

Deno.test("fd limit: a peer under ulimit -n 40 exits 1 with one sentence", async () => {
  const out = await peerUnderLimit(40, [
    "127.0.0.1",
    "9",
    "false",
    "--tracker",
    "http://127.0.0.1:9/",
  ])
    .output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 1, stderr);
  const msg = assertOneSentence(stderr);
  assertStringIncludes(msg, "too few for a single peer connection");
  assertStringIncludes(msg, "ulimit -n");
});

Deno.test("fd limit: swarm.ts with too many leechers for ulimit -n exits 1 before starting anything", async () => {
  const parent = await Deno.makeTempDir({ prefix: "fd_limit_" });
  try {
    const dir = `${parent}/swarm-data`;
    const child = underLimit(64, [
      "run",
      "--quiet",
      "--allow-net=127.0.0.1,localhost,0.0.0.0",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-env=NO_COLOR,TERM",
      "swarm.ts",
      "--leechers",
      "40",
      "--size",
      "1MiB",
      "--dir",
      dir,
      "--no-dashboard",
    ], new URL("../", import.meta.url).pathname);
    const out = await child.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, stderr);
    const msg = assertOneSentence(stderr);
    assertStringIncludes(msg, "--leechers 40 needs about");
    assertStringIncludes(msg, "ulimit -n");
    assertEquals(new TextDecoder().decode(out.stdout), "", "nothing else printed");
    const made = await Deno.stat(dir).then(() => true, () => false);
    assert(!made, "no folder, test file or process was made");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
