/**
 * The command lines of `peer.ts` and `swarm.ts` as a user meets them: wrong arguments exit 2
 * with one sentence and the usage, `--help` exits 0, and failures the user can act on (a port in
 * use, no tracker, no seed file, a download folder that cannot be written) exit 1 with one
 * sentence naming the culprit. Never a stack trace.
 *
 * @example
 * ```sh
 * deno test -P tests/peer_cli_test.ts
 * ```
 * @module
 */

import { freePort, spawnEntry } from "../lib/process.ts";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";
import { FILE, HOST, Swarm } from "./swarm_helpers.ts";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function peer(args: string[]): Promise<Result> {
  const out = await spawnEntry("peer", args).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function swarm(args: string[]): Promise<Result> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-env",
      "swarm.ts",
      ...args,
    ],
    cwd: new URL("../", import.meta.url),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Checks the shape every error must have: the exit code, a first stderr line `error: …` that is
 * one sentence (no sentence end followed by another), no stack trace, and for exit 1 nothing
 * but that line. Returns the message without `error: `.
 */
function assertError(r: Result, code: number, what: string): string {
  const show = `${what}: exit ${r.code}\n--- stderr:\n${r.stderr}--- stdout:\n${r.stdout}`;
  assertEquals(r.code, code, show);
  const lines = r.stderr.trimEnd().split("\n");
  assert(lines[0].startsWith("error: "), `first line starts with "error: "\n${show}`);
  const msg = lines[0].slice("error: ".length);
  assert(msg.length > 0 && !/[.!?]['")]?\s+\S/.test(msg), `one sentence: ${JSON.stringify(msg)}`);
  assert(!lines.some((l) => l.startsWith("    at ")), `no stack trace\n${show}`);
  if (code === 1) assertEquals(lines.length, 1, `one line on stderr\n${show}`);
  return msg;
}

const PEER_USAGE = "usage: peer HOST PORT IS_SEEDER [options]";

Deno.test("peer: wrong arguments exit 2 with one sentence and the usage", async (t) => {
  const cases: [string, string[], string][] = [
    ["no arguments", [], "expected HOST PORT IS_SEEDER"],
    ["a port that is not a number", ["localhost", "abc", "false"], "PORT must be a port number"],
    ["a port out of range", ["localhost", "70000", "false"], "PORT must be a port number"],
    ["IS_SEEDER neither true nor false", ["localhost", "9001", "maybe"], "IS_SEEDER"],
    ["a fourth argument", ["localhost", "9001", "false", "extra"], "got 4 argument(s)"],
    ["an unknown option", ["localhost", "9001", "true", "--bogus"], "--bogus"],
    ["an option without its value", ["localhost", "9001", "true", "--tracker"], "--tracker"],
    ["a tracker that is not a URL", ["localhost", "9001", "false", "--tracker", "x y"], "URL"],
    ["a tiny piece length", ["localhost", "9001", "true", "--piece-length", "1KiB"], "16KiB"],
    ["pipeline 0", ["localhost", "9001", "false", "--pipeline", "0"], "--pipeline"],
    ["max-peers 0", ["localhost", "9001", "false", "--max-peers", "0"], "--max-peers must be"],
    ["max-peers not a number", ["localhost", "9001", "true", "--max-peers", "many"], "--max-peers"],
    [
      "max-peers-per-ip 0",
      ["localhost", "9001", "true", "--max-peers-per-ip", "0"],
      "--max-peers-per-ip must be",
    ],
    [
      "max-peers-per-ip 2.5",
      ["localhost", "9001", "false", "--max-peers-per-ip", "2.5"],
      "--max-peers-per-ip",
    ],
    ["max-peers without its value", ["localhost", "9001", "false", "--max-peers"], "--max-peers"],
  ];
  for (const [what, args, part] of cases) {
    await t.step(what, async () => {
      const r = await peer(args);
      const msg = assertError(r, 2, what);
      assertStringIncludes(msg, part);
      assertStringIncludes(r.stderr, PEER_USAGE);
      assertEquals(r.stdout, "");
    });
  }
});

Deno.test("peer: --help prints the usage and exits 0", async () => {
  const r = await peer(["--help"]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, PEER_USAGE);
  assertStringIncludes(r.stdout, "--piece-length SIZE");
  assertStringIncludes(r.stdout, "--max-peers N");
  assertStringIncludes(r.stdout, "--max-peers-per-ip N");
  assertEquals(r.stderr, "");
});

Deno.test("peer: a port in use exits 1 naming the port", async () => {
  using held = Deno.listen({ hostname: HOST, port: 0 });
  const port = held.addr.port;
  const r = await peer([HOST, String(port), "false", "--tracker", `http://${HOST}:${freePort()}/`]);
  const msg = assertError(r, 1, "port in use");
  assertStringIncludes(msg, `port ${port} is already in use`);
});

Deno.test("peer: an unreachable tracker exits 1 naming the tracker", async () => {
  const url = `http://${HOST}:${freePort()}/`;
  const r = await peer([HOST, String(freePort()), "false", "--tracker", url]);
  const msg = assertError(r, 1, "tracker unreachable");
  assertStringIncludes(msg, `cannot reach the tracker at ${url}`);
});

Deno.test("peer: a missing seed file exits 1 naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "peer_cli_" });
  try {
    const r = await peer([
      HOST,
      String(freePort()),
      "true",
      "--tracker",
      `http://${HOST}:${freePort()}/`,
      "--dir",
      dir,
      "--file",
      "nothing-here.iso",
    ]);
    const msg = assertError(r, 1, "missing seed file");
    assertStringIncludes(msg, `seed file ${dir}/nothing-here.iso not found`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("peer: a leecher whose --dir cannot be written exits 1 and leaves the tracker", async (t) => {
  const s = await Swarm.create();
  try {
    const tracker = await s.startTracker();
    await s.startSeeder();
    // A path under a regular file: not writable even by root.
    const blocker = `${s.dir}/not-a-dir`;
    await Deno.writeTextFile(blocker, "x");
    const port = freePort();
    const r = await peer([...s.peerArgs(port, false, `${blocker}/sub`)]);

    await t.step("exit 1 with one sentence naming the file", () => {
      const msg = assertError(r, 1, "unwritable --dir");
      assertStringIncludes(msg, `cannot create ${blocker}/sub/${HOST}_${port}_${FILE}`);
    });

    await t.step("it does not stay listed at the tracker until it expires", async () => {
      // It had registered before it found the folder unusable: it should say goodbye, not leave
      // the others dialling a dead port until the tracker expires it (3 intervals later).
      const id = `${HOST}:${port}`;
      await tracker.waitForLine(new RegExp(`${id} joined as leecher`));
      const gone = await tracker.waitForLine(new RegExp(`${id} (left|expired)`));
      assert(gone.endsWith(`${id} left`), `the failed leecher left the tracker: ${gone}`);
    });
  } finally {
    await s.close();
  }
});

Deno.test("swarm.ts: wrong arguments exit 2 with one sentence and the usage; --help exits 0", async (t) => {
  const cases: [string, string[], string][] = [
    ["no leechers", ["--leechers", "0"], "--leechers must be a whole number from 1 to 40"],
    ["too many leechers", ["--leechers", "41"], "--leechers"],
    ["a bad size", ["--size", "lots"], "--size"],
    ["a bad port", ["--tracker-port", "0"], "--tracker-port"],
    ["an unknown option", ["--bogus"], "--bogus"],
    ["a stray argument", ["extra"], "extra"],
  ];
  for (const [what, args, part] of cases) {
    await t.step(what, async () => {
      const r = await swarm(args);
      const msg = assertError(r, 2, what);
      assertStringIncludes(msg, part);
      assertStringIncludes(r.stderr, "usage: deno task swarm [options]");
    });
  }
  await t.step("--help", async () => {
    const r = await swarm(["--help"]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "--leechers N");
    assertEquals(r.stderr, "");
  });
});
