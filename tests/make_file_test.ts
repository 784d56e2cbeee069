/**
 * Tests for `make_file.ts`, run as a real process exactly as a user would, and for the modules
 * behind it: `lib/test_file.ts` (the generator, checked against the reference C implementation's
 * outputs, and the atomic chunked writer) and `lib/progress_bar.ts` (rendering and throttling).
 *
 * @example
 * ```sh
 * deno test -P tests/make_file_test.ts
 * ```
 * @module
 */

import { fileURLToPath } from "node:url";
import { FatalError, systemReason } from "../lib/cli.ts";
import { parseTorrent } from "../lib/metainfo.ts";
import {
  formatDuration,
  formatRate,
  ProgressBar,
  type ProgressSink,
  renderProgress,
} from "../lib/progress_bar.ts";
import { testBytes, TestDataStream, writeTestFile, Xoshiro128pp } from "../lib/test_file.ts";
import {
  assert,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./assert.ts";

const MAKE_FILE = fileURLToPath(new URL("../make_file.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MiB = 1 << 20;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs make_file.ts as its own process with the permissions the README gives it. */
async function makeFile(args: string[], perms = ["--allow-read", "--allow-write"]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-prompt", ...perms, MAKE_FILE, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const td = new TextDecoder();
  return { code: out.code, stdout: td.decode(out.stdout), stderr: td.decode(out.stderr) };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "make_file_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Asserts that `text` is one `error: ...` line: no stack trace, no usage. */
function assertOneErrorLine(text: string, includes: string): void {
  const lines = text.trimEnd().split("\n");
  assertEquals(lines.length, 1, `one line, got:\n${text}`);
  assert(lines[0].startsWith("error: "), lines[0]);
  assertStringIncludes(lines[0], includes);
}

// --- make_file.ts as a process ---------------------------------------------------------------

Deno.test("make_file: writes the file, reports it, and leaves no .part", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/test.iso`;
    const r = await makeFile(["--size", "3MiB", "--out", path]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals((await Deno.stat(path)).size, 3 * MiB);
    assertEquals(await exists(`${path}.part`), false);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "test.iso",
      "test.iso.torrent",
    ]);
    // One summary line with the size, the path, the time and the rate, then the .torrent's.
    assertStringIncludes(r.stdout, "wrote 3.0 MiB (3145728 bytes)");
    assertStringIncludes(r.stdout, path);
    assert(/in \d+\.\d\d s \([\d.]+ MB\/s\), seed 1\n/.test(r.stdout), r.stdout);
    // The .torrent describes exactly this file, announcing to the default tracker.
    const { announce, meta } = await parseTorrent(await Deno.readFile(`${path}.torrent`));
    assertEquals(announce, "http://localhost:8000/announce");
    assertEquals(meta.length, 3 * MiB);
    assertEquals(meta.pieceCount, 3);
    assertStringIncludes(r.stdout, `info-hash ${meta.infoHashHex}`);
    // stderr is not a terminal here: no progress bar is drawn.
    assertEquals(r.stderr, "");
    // The content is the documented stream for the default seed.
    const bytes = await Deno.readFile(path);
    assertEquals(bytes.subarray(0, 4), Uint8Array.of(0xe4, 0x8d, 0xf7, 0x7f));
    assertEquals(bytes, testBytes(3 * MiB, 1));
  });
});

Deno.test("make_file: the same seed makes the same bytes, another seed others", async () => {
  await withTempDir(async (dir) => {
    const run = async (name: string, extra: string[]) => {
      const r = await makeFile(["--size", "3MiB", "--out", `${dir}/${name}`, ...extra]);
      assertEquals(r.code, 0, r.stderr);
      return await Deno.readFile(`${dir}/${name}`);
    };
    const a = await run("a.iso", []);
    const b = await run("b.iso", ["--seed", "1"]);
    const c = await run("c.iso", ["--seed", "2"]);
    const big = await run("d.iso", ["--seed", "18446744073709551615"]);
    assertEquals(a, b, "default seed is 1, and runs are reproducible");
    assertNotEquals(a, c);
    assertNotEquals(a, big);
    assertEquals(c, testBytes(3 * MiB, 2));
    // Different seeds agree on no more bytes than chance would (about 1 in 256).
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === c[i]) same++;
    assert(same < a.length / 200, `${same} equal bytes`);
  });
});

Deno.test("make_file: odd sizes and unit spellings are exact", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, number][] = [["12345", 12345], ["1", 1], ["2MB", 2_000_000]];
    for (const [text, size] of cases) {
      const path = `${dir}/f-${size}`;
      const r = await makeFile(["--size", text, "--out", path]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(await Deno.readFile(path), testBytes(size, 1), text);
    }
  });
});

Deno.test("make_file: bad arguments exit 2 with the usage", async () => {
  await withTempDir(async (dir) => {
    const out = `${dir}/x.iso`;
    const cases: [string[], string][] = [
      [["--size", "abc"], "--size"],
      [["--size", "0"], "--size"],
      [["--size", "-5MiB"], "--size"],
      [["--size"], "--size"],
      [["--seed", "-1"], "--seed"],
      [["--seed", "1.5"], "--seed"],
      [["--seed", "18446744073709551616"], "--seed"],
      [["--bogus"], "bogus"],
      [["extra-positional"], "extra-positional"],
      [["--force=yes"], "force"],
      [["--out", ""], "--out"],
    ];
    for (const [args, mention] of cases) {
      // A later --out (the empty one) overrides the first.
      const r = await makeFile(["--out", out, ...args]);
      assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert(r.stderr.startsWith("error: "), r.stderr);
      assertStringIncludes(r.stderr.split("\n")[0], mention);
      assertStringIncludes(r.stderr, "usage: make_file");
      assertEquals(r.stdout, "");
    }
    assertEquals([...Deno.readDirSync(dir)], [], "nothing was written");
  });
});

Deno.test("make_file: --help prints the usage and exits 0", async () => {
  for (const flag of ["--help", "-h"]) {
    const r = await makeFile([flag]);
    assertEquals(r.code, 0);
    assert(r.stdout.startsWith("usage: make_file"), r.stdout);
    assertStringIncludes(r.stdout, "--force");
    assertEquals(r.stderr, "");
  }
});

Deno.test("make_file: an existing file of the right size is kept; --force rewrites", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.iso`;
    const other = testBytes(3 * MiB, 99);
    await Deno.writeFile(path, other);
    const kept = await makeFile(["--size", "3MiB", "--out", path]);
    assertEquals(kept.code, 0, kept.stderr);
    assertStringIncludes(kept.stdout, "already exists");
    assertEquals(await Deno.readFile(path), other, "not rewritten");
    // Another size: refused, file untouched.
    const refused = await makeFile(["--size", "2MiB", "--out", path]);
    assertEquals(refused.code, 1);
    assertOneErrorLine(refused.stderr, "--force");
    assertEquals(await Deno.readFile(path), other);
    // --force: rewritten with the requested size and seed.
    const forced = await makeFile(["--size", "2MiB", "--out", path, "--force"]);
    assertEquals(forced.code, 0, forced.stderr);
    assertEquals(await Deno.readFile(path), testBytes(2 * MiB, 1));
    assertEquals(await exists(`${path}.part`), false);
  });
});

Deno.test("make_file: an unwritable destination is one error line, exit 1, no .part", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/plain-file`, new Uint8Array(1));
    const cases: [string, string][] = [
      [`${dir}/plain-file/x.iso`, "Not a directory"],
      [`${dir}/missing-dir/x.iso`, "No such file or directory"],
    ];
    for (const [path, why] of cases) {
      const r = await makeFile(["--size", "1MiB", "--out", path]);
      assertEquals(r.code, 1, path);
      assertOneErrorLine(r.stderr, `cannot write ${path}: ${why}`);
    }
    // A directory where the file should go.
    await Deno.mkdir(`${dir}/a-dir`);
    const r = await makeFile(["--size", "1MiB", "--out", `${dir}/a-dir`]);
    assertEquals(r.code, 1);
    assertOneErrorLine(r.stderr, "not a regular file");
    assertEquals(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["a-dir", "plain-file"],
      "no .part left anywhere",
    );
  });
});

Deno.test("make_file: missing permissions are one error line, exit 1", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.iso`;
    const noWrite = await makeFile(["--size", "1MiB", "--out", path], ["--allow-read"]);
    assertEquals(noWrite.code, 1);
    assertOneErrorLine(noWrite.stderr, "--allow-write");
    const noRead = await makeFile(["--size", "1MiB", "--out", path], []);
    assertEquals(noRead.code, 1);
    assertOneErrorLine(noRead.stderr, "--allow-read");
    assertEquals(await exists(path), false);
  });
});

// --- lib/test_file.ts ------------------------------------------------------------------------

Deno.test("test_file: xoshiro128++ matches the reference C implementation", () => {
  // From the authors' xoshiro128plusplus.c, state seeded with two splitmix64 outputs.
  const cases: [number | bigint, string[], string][] = [
    [1, ["7ff78de4", "9a170265", "dac127b8", "9859e914", "4d4b41b3", "ba2afb67"], "07972704"],
    [0, ["4653daa3", "73922b58", "b82b4add", "d9fabd3b", "3c8698c3", "1c9b58ff"], "722aab5b"],
    [2n ** 64n - 1n, ["9df76fa2", "4c367255", "96ef9cd0", "2313ad4b", "511c5746"], "8cac0c92"],
  ];
  for (const [seed, first, millionth] of cases) {
    const rng = new Xoshiro128pp(seed);
    const got = first.map(() => rng.next().toString(16).padStart(8, "0"));
    assertEquals(got, first, `seed ${seed}`);
    // Skip to output number 1,000,001 (index 1,000,000) through fill().
    rng.fill(new Uint32Array(1_000_000 - first.length));
    assertEquals(rng.next().toString(16).padStart(8, "0"), millionth, `seed ${seed}`);
  }
});

Deno.test("test_file: seeds must be integers from 0 to 2^64-1", () => {
  for (const bad of [-1, 1.5, NaN, 2 ** 53, -1n, 2n ** 64n]) {
    assertThrows(() => new Xoshiro128pp(bad), RangeError);
  }
  assertEquals(new Xoshiro128pp(5n).next(), new Xoshiro128pp(5).next());
});

Deno.test("test_file: the byte stream does not depend on how it is read", () => {
  const whole = testBytes(100_003, 7);
  // Little-endian words: the first bytes are the first output's low byte first.
  const w = new Xoshiro128pp(7).next();
  assertEquals([...whole.subarray(0, 4)], [
    w & 0xff,
    (w >>> 8) & 0xff,
    (w >>> 16) & 0xff,
    w >>> 24,
  ]);
  let x = 1;
  for (let trial = 0; trial < 20; trial++) {
    const stream = new TestDataStream(7);
    // Read into an unaligned view of a larger buffer, in chunks of every size from 0 up.
    const backing = new Uint8Array(whole.length + 1);
    const out = backing.subarray(1);
    for (let off = 0; off < out.length;) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const n = Math.min(out.length - off, (x >>> 16) % (trial < 10 ? 9 : 5000));
      stream.read(out.subarray(off, off + n));
      off += n;
    }
    assertEquals(out, whole, `trial ${trial}`);
  }
  // A smaller file is a prefix of a larger one.
  assertEquals(testBytes(1001, 7), whole.subarray(0, 1001));
});

Deno.test("test_file: writeTestFile writes the stream in chunks and reports progress", async () => {
  await withTempDir(async (dir) => {
    for (const [size, chunkSize] of [[12345, 1000], [3 * MiB, 1 << 20], [10, 4 << 20], [0, 10]]) {
      const path = `${dir}/w-${size}-${chunkSize}`;
      const progress: [number, number][] = [];
      let flushedAfter = -1;
      const r = await writeTestFile(path, size, {
        seed: 3,
        chunkSize,
        onProgress: (done, total) => progress.push([done, total]),
        onFlush: () => flushedAfter = progress.length,
      });
      assertEquals(flushedAfter, progress.length, "onFlush comes once, after the last progress");
      assertEquals(r.path, path);
      assertEquals(r.size, size);
      assert(r.seconds >= 0);
      assertEquals(await Deno.readFile(path), testBytes(size, 3));
      assertEquals(await exists(`${path}.part`), false);
      // Progress rises chunk by chunk and ends at the total.
      assertEquals(progress.length, Math.max(1, Math.ceil(size / chunkSize)));
      for (let i = 0; i < progress.length; i++) {
        assertEquals(progress[i], [Math.min(size, (i + 1) * chunkSize), size]);
      }
    }
  });
});

Deno.test("test_file: writeTestFile replaces an existing file and a stale .part", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.iso`;
    await Deno.writeFile(path, new Uint8Array(5000).fill(1));
    await Deno.writeFile(`${path}.part`, new Uint8Array(9000).fill(2));
    await writeTestFile(path, 4000);
    assertEquals(await Deno.readFile(path), testBytes(4000, 1));
    assertEquals(await exists(`${path}.part`), false);
  });
});

Deno.test("test_file: an aborted write removes the .part and leaves no file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/x.iso`;
    const abort = new AbortController();
    const reason = new Error("stop");
    let calls = 0;
    const e = await assertRejects(() =>
      writeTestFile(path, 10 * MiB, {
        chunkSize: MiB,
        signal: abort.signal,
        onProgress: () => {
          if (++calls === 2) abort.abort(reason);
        },
      })
    );
    assertEquals(e, reason);
    assert(calls >= 2 && calls < 10, `stopped early (${calls} chunks)`);
    assertEquals([...Deno.readDirSync(dir)], [], "neither x.iso nor x.iso.part");
    // Already aborted: nothing is created at all.
    await assertRejects(() => writeTestFile(path, 10, { signal: AbortSignal.abort(reason) }));
    assertEquals([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("test_file: write failures are one-sentence FatalErrors", async () => {
  await withTempDir(async (dir) => {
    await assertRejects(
      () => writeTestFile(`${dir}/missing/x.iso`, 10),
      FatalError,
      `cannot write ${dir}/missing/x.iso: No such file or directory`,
    );
    await assertRejects(() => writeTestFile(`${dir}/x`, -1), RangeError);
    await assertRejects(() => writeTestFile(`${dir}/x`, 1.5), RangeError);
    await assertRejects(() => writeTestFile(`${dir}/x`, 10, { chunkSize: 0 }), RangeError);
  });
});

Deno.test("cli: systemReason keeps the operating system's words only", () => {
  const cases: [unknown, string][] = [
    [new Error("No space left on device (os error 28)"), "No space left on device"],
    [new Error("Permission denied (os error 13): open '/x/y.part'"), "Permission denied"],
    [new Error("Not a directory (os error 20): rename 'a' -> 'b'"), "Not a directory"],
    ["plain text", "plain text"],
  ];
  for (const [e, expected] of cases) assertEquals(systemReason(e), expected);
});

// --- lib/progress_bar.ts ---------------------------------------------------------------------

Deno.test("progress_bar: frames fit the line and show percent, sizes, rate and ETA", () => {
  const frame = { label: "ubuntu-teste.iso", done: 250 * MiB, total: 500 * MiB, seconds: 1 };
  const wide = renderProgress({ ...frame, columns: 120 });
  assertStringIncludes(wide, "ubuntu-teste.iso [");
  assertStringIncludes(wide, " 50% 250.0 MiB/500.0 MiB 262 MB/s ETA 1s");
  assert(/\[=+> +\]/.test(wide), wide);
  for (let columns = 0; columns <= 200; columns++) {
    for (const done of [0, 1, 250 * MiB, 500 * MiB]) {
      const line = renderProgress({ ...frame, done, columns });
      assert(line.length <= Math.max(0, columns - 1), `${columns} columns: ${line}`);
    }
  }
  // Narrow lines drop the bar before the numbers.
  assert(!renderProgress({ ...frame, columns: 60 }).includes("["));
  // Done: a full bar, 100%, no ETA.
  const full = renderProgress({ ...frame, done: 500 * MiB, columns: 120 });
  assert(/\[=+\] 100% /.test(full), full);
  assert(!full.includes("ETA"), full);
  assertStringIncludes(renderProgress({ done: 0, total: 0, seconds: 0, columns: 80 }), "100%");
});

Deno.test("progress_bar: rates and durations read well", () => {
  assertEquals(formatRate(1_500_000_000, 1), "1500 MB/s");
  assertEquals(formatRate(12_340_000, 1), "12.3 MB/s");
  assertEquals(formatRate(5, 0), "- MB/s");
  assertEquals(formatDuration(0), "0s");
  assertEquals(formatDuration(41.2), "42s");
  assertEquals(formatDuration(185), "3m05s");
  assertEquals(formatDuration(3720), "1h02m");
});

/** A fake terminal (or not) that records what is written to it. */
function sink(terminal: boolean): ProgressSink & { text: () => string } {
  const chunks: Uint8Array[] = [];
  return {
    isTerminal: () => terminal,
    // Accept at most 7 bytes per call, to check that short writes are completed.
    writeSync: (p) => chunks.push(p.slice(0, 7)) && Math.min(7, p.length),
    text: () => new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))),
  };
}

Deno.test("progress_bar: draws in place on a terminal, at most every interval", () => {
  let now = 0;
  const out = sink(true);
  const bar = new ProgressBar(100, { label: "f", sink: out, columns: 80, now: () => now });
  assertEquals(bar.active, true);
  bar.update(10); // drawn: the first frame
  now = 50;
  bar.update(20); // skipped: within 100 ms
  now = 150;
  bar.update(30); // drawn
  now = 160;
  bar.update(100); // drawn: complete, whatever the interval
  bar.finish();
  const frames = out.text().split("\r").filter((f) => f !== "");
  assertEquals(frames.length, 4, JSON.stringify(out.text()));
  assert(frames[0].startsWith("f [") && frames[0].includes(" 10% "), frames[0]);
  assert(frames[1].includes(" 30% "), frames[1]);
  assert(frames[2].includes("100% "), frames[2]);
  for (const f of frames.slice(0, 3)) assert(f.endsWith("\x1b[K"), "each frame clears the rest");
  assertEquals(frames[3], "\x1b[K", "finish() erases the bar");
  assertEquals(bar.seconds, 0.16);
});

Deno.test("progress_bar: draws nothing when the output is not a terminal", () => {
  const out = sink(false);
  const bar = new ProgressBar(100, { sink: out, now: () => 0 });
  assertEquals(bar.active, false);
  bar.update(50);
  bar.update(100);
  bar.finish();
  assertEquals(out.text(), "");
});
