/**
 * Whole-swarm tests through the real entrypoints: `tracker.ts` and `peer.ts` (and `swarm.ts`)
 * as child processes on 127.0.0.1 with free ports, files in a temp directory, every copy
 * compared byte for byte with the original. They cover plain distribution, a late joiner served
 * by former leechers after the seeder left, a leecher SIGKILLed mid-download, the tracker dying
 * and coming back mid-download, and `deno task swarm` itself.
 *
 * Nothing waits on a sleep: tests wait for output lines ("Seeding ", "DOWNLOAD COMPLETE!") or
 * poll with a deadline. A download on localhost is too fast for the peers' once-a-second
 * `Progress` lines, so "mid-download" is detected by polling the leecher's file for its first
 * verified piece.
 *
 * @example
 * ```sh
 * deno test -P tests/swarm_test.ts
 * ```
 * @module
 */

import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import {
  assertSameFile,
  freePortRange,
  HOST,
  PIECE_LENGTH,
  piecesIntact,
  piecesOnDisk,
  pollUntil,
  receivedFrom,
  Swarm,
} from "./swarm_helpers.ts";

const COMPLETE = /^DOWNLOAD COMPLETE! /;
/** The bigger file for the tests that interrupt a download: 96 whole pieces and a short one. */
const BIG_SIZE = 24 * 1024 * 1024 + 4321;

Deno.test("swarm: a seeder and 3 leechers distribute a file with a short last piece", async () => {
  const swarm = await Swarm.create();
  try {
    const tracker = await swarm.startTracker();
    const seeder = await swarm.startSeeder();
    assertStringIncludes(seeder.lines.join("\n"), "(3.0 MiB, 13 pieces)");
    const leechers = [1, 2, 3].map((i) => swarm.startLeecher([], `leecher${i}`));
    for (const l of leechers) {
      const line = await l.waitForLine(COMPLETE);
      assertStringIncludes(line, "13/13 pieces");
    }
    for (const l of leechers) await assertSameFile(swarm.copyPath(l.port), swarm.seedPath);
    // The tracker saw each of them complete.
    for (const l of leechers) {
      await tracker.waitForLine(new RegExp(`${HOST}:${l.port} completed the download`));
    }
    // Everyone leaves cleanly on SIGTERM: exit 0, nothing on stderr.
    for (const p of [...leechers, seeder, tracker]) {
      const status = await p.stop();
      assertEquals(status.code, 0, `${p.name} exit code\n${p.describe()}`);
      assertEquals(p.stderrText, "", `${p.name} stderr`);
    }
  } finally {
    await swarm.close();
  }
});

Deno.test("swarm: a late leecher is served by former leechers after the seeder left", async () => {
  const swarm = await Swarm.create();
  try {
    await swarm.startTracker();
    const seeder = await swarm.startSeeder();
    const early = [1, 2].map((i) => swarm.startLeecher([], `leecher${i}`));
    for (const l of early) await l.waitForLine(COMPLETE);

    // The seeder leaves; only the two former leechers hold the file now.
    assertEquals((await seeder.stop()).code, 0, seeder.describe());
    assert(seeder.lines.some((l) => l.startsWith("Leaving the swarm")), seeder.describe());

    const late = swarm.startLeecher([], "late leecher");
    await late.waitForLine(COMPLETE);
    await assertSameFile(swarm.copyPath(late.port), swarm.seedPath);

    // On leaving it lists whom it received from: only former leechers, the whole file's worth.
    assertEquals((await late.stop()).code, 0, late.describe());
    const from = receivedFrom(late.lines);
    const earlyIds = early.map((l) => `${HOST}:${l.port}`);
    assert(from.size > 0, `the late leecher names whom it received from\n${late.describe()}`);
    for (const id of from.keys()) {
      assert(
        earlyIds.includes(id),
        `received from ${id}, not a former leecher\n${late.describe()}`,
      );
    }
  } finally {
    await swarm.close();
  }
});

Deno.test("swarm: a leecher SIGKILLed mid-download does not stop the others, and resumes", async () => {
  const swarm = await Swarm.create();
  try {
    await swarm.startTracker();
    await swarm.startSeeder(BIG_SIZE);
    const original = await Deno.readFile(swarm.seedPath);
    const pieceCount = Math.ceil(BIG_SIZE / PIECE_LENGTH);
    const leechers = [1, 2, 3].map((i) => swarm.startLeecher(["--quiet"], `leecher${i}`));
    const [victim, ...survivors] = leechers;

    // Kill it as soon as its first verified piece is on disk.
    const victimCopy = swarm.copyPath(victim.port);
    await pollUntil(() => piecesOnDisk(victimCopy, original) > 0, "the first piece", 20_000, 2);
    victim.kill("SIGKILL");
    const status = await victim.status;
    assertEquals(status.signal, "SIGKILL");
    const held = await piecesIntact(victimCopy, original);
    assert(
      held < pieceCount && !victim.lines.some((l) => COMPLETE.test(l)),
      `the victim was killed mid-download (it held ${held}/${pieceCount} pieces)`,
    );

    for (const l of survivors) await l.waitForLine(COMPLETE);
    for (const l of survivors) await assertSameFile(swarm.copyPath(l.port), swarm.seedPath);

    // Restarted on the same port and folder, it keeps the verified pieces it had and finishes.
    const again = swarm.spawn("peer", "restarted victim", [
      ...swarm.peerArgs(victim.port, false),
      "--quiet",
    ]);
    // It rescans the file and keeps exactly the whole pieces ("Resumed with" is left out when
    // the kill cut the only piece's write short).
    const first = await again.waitForLine(/^(Resumed with \d+\/|Downloading )/);
    const kept = Number(/^Resumed with (\d+)\//.exec(first)?.[1] ?? 0);
    assertEquals(kept, held, `pieces kept on resuming (${first})`);
    await again.waitForLine(COMPLETE);
    await assertSameFile(victimCopy, swarm.seedPath);
  } finally {
    await swarm.close();
  }
});

Deno.test("swarm: leechers finish when the tracker dies mid-download, then rejoin it", async () => {
  const swarm = await Swarm.create();
  try {
    const tracker = await swarm.startTracker();
    const seeder = await swarm.startSeeder(BIG_SIZE);
    const original = await Deno.readFile(swarm.seedPath);
    const pieceCount = Math.ceil(BIG_SIZE / PIECE_LENGTH);
    const leechers = [1, 2, 3].map((i) => swarm.startLeecher(["--quiet"], `leecher${i}`));

    // Once every leecher has a piece it knows its peers; then the tracker crashes.
    const copies = leechers.map((l) => swarm.copyPath(l.port));
    await pollUntil(
      () => copies.every((c) => piecesOnDisk(c, original) > 0),
      "a first piece at every leecher",
      20_000,
      2,
    );
    tracker.kill("SIGKILL");
    await tracker.stop();
    const counts = copies.map((c) => piecesOnDisk(c, original));
    assert(
      counts.some((n) => n < pieceCount),
      `the tracker died mid-download (pieces held: ${counts.join(", ")} of ${pieceCount})`,
    );

    for (const l of leechers) await l.waitForLine(COMPLETE);
    for (const c of copies) await assertSameFile(c, swarm.seedPath);
    // Each notices the tracker is gone and keeps going.
    for (const l of leechers) await l.waitForLine(/^Tracker unavailable \(.*still trading/);

    // The tracker comes back on the same port: everyone registers again, the seeder republishes,
    // and a newcomer gets the file through the new tracker.
    const mark = leechers.map((l) => l.lines.length);
    const restarted = await swarm.startTracker();
    for (const [i, p] of [...leechers, seeder].entries()) {
      await p.waitForLine(/^Registered with the tracker again$/, 20_000, mark[i] ?? 0);
    }
    await restarted.waitForLine(new RegExp(` published "seed\\.bin" \\(${pieceCount} pieces`));
    for (const l of leechers) {
      await restarted.waitForLine(new RegExp(`${HOST}:${l.port} joined as seeder`));
    }
    const newcomer = swarm.startLeecher(["--quiet"], "newcomer");
    await newcomer.waitForLine(COMPLETE);
    await assertSameFile(swarm.copyPath(newcomer.port), swarm.seedPath);
  } finally {
    await swarm.close();
  }
});

Deno.test("swarm: `swarm.ts` runs a whole swarm and reports identical copies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "swarm_task_" });
  try {
    const base = freePortRange(3);
    const trackerPort = freePortRange(1);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        "--allow-run",
        "--allow-env",
        "swarm.ts",
        "--leechers",
        "2",
        "--size",
        "2MiB",
        "--dir",
        dir,
        "--tracker-port",
        String(trackerPort),
        "--base-port",
        String(base),
        "--no-dashboard",
      ],
      cwd: new URL("../", import.meta.url),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, `exit code\n${stdout}\n${stderr}`);
    assertStringIncludes(stdout, "Swarm summary: 2 leecher(s), ubuntu-teste.iso, 2.0 MiB");
    assertStringIncludes(stdout, "All 2 copies are byte-identical to the original");
    const original = `${dir}/ubuntu-teste.iso`;
    assertEquals((await Deno.stat(original)).size, 2 * 1024 * 1024);
    for (const port of [base + 1, base + 2]) {
      assertStringIncludes(stdout, `localhost:${port}`);
      await assertSameFile(`${dir}/localhost_${port}_ubuntu-teste.iso`, original);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
