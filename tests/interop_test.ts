/**
 * Interoperability with real BitTorrent clients, through the real `tracker.ts` and `peer.ts`:
 * libtorrent (Debian's python3-libtorrent, driven by `tests/clients/lt_client.py`), aria2
 * (`aria2c`) and Transmission (`transmission-cli`) download from our seeder through our tracker's
 * HTTP announce; our leecher downloads from a libtorrent seeder; our peers trade pieces both ways
 * with libtorrent leechers in a mixed swarm, and dial a libtorrent leecher that joined before
 * them. Every copy is compared byte for byte.
 *
 * The clients come from the distribution (`.ci/run` installs them); a missing one fails its
 * test with the package to install. Transmission refuses loopback peers, so its test puts it in
 * a network namespace joined to ours by a veth pair (root is needed, as in CI); everything else
 * runs on 127.0.0.1. Nothing waits on a sleep: tests wait for output lines, process exits or
 * poll files against a deadline.
 *
 * @example
 * ```sh
 * deno test -P tests/interop_test.ts
 * ```
 * @module
 */

import { entryPath, freePort, spawnEntry } from "../lib/process.ts";
import { writeTestFile } from "../lib/test_file.ts";
import { assert, assertEquals, AssertionError, assertStringIncludes } from "./assert.ts";
import { Netns, requireProgram } from "./netns.ts";
import {
  assertSameFile,
  FILE,
  HOST,
  PIECE_LENGTH,
  pollUntil,
  Proc,
  SMALL_SIZE,
  START_TIMEOUT_MS,
  Swarm,
} from "./swarm_helpers.ts";

/** python3-libtorrent is packaged for Debian's Python only, not for a pyenv `python3`. */
const SYSTEM_PYTHON = "/usr/bin/python3";
const LT_CLIENT = new URL("./clients/lt_client.py", import.meta.url).pathname;
const COMPLETE = /^DOWNLOAD COMPLETE! /;
/** How long a real client may take to fetch a few MiB (Transmission alone idles ~15 s first). */
const CLIENT_TIMEOUT_MS = 45_000;

// ---------------------------------------------------------------------------------------------
// Clients

/** Fails when Debian's Python cannot import libtorrent. */
async function requireLibtorrent(): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(SYSTEM_PYTHON, {
      args: ["-c", "import libtorrent"],
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (e) {
    throw new AssertionError(`${SYSTEM_PYTHON} cannot run: apt-get install python3-libtorrent`, {
      cause: e,
    });
  }
  if (!out.success) {
    throw new AssertionError(
      `${SYSTEM_PYTHON} cannot import libtorrent: apt-get install python3-libtorrent\n` +
        new TextDecoder().decode(out.stderr),
    );
  }
}

/** Adds a process to the swarm, so {@linkcode Swarm.close} stops it. */
function adopt(swarm: Swarm, name: string, command: Deno.Command): Proc {
  const p = new Proc(name, command.spawn());
  swarm.procs.push(p);
  return p;
}

/** A libtorrent client (`lt_client.py`) on `port`; resolves once its session listens. */
async function startLibtorrent(
  swarm: Swarm,
  name: string,
  mode: "leech" | "seed",
  torrent: string,
  dir: string,
  port: number,
): Promise<Proc & { port: number }> {
  const p = adopt(
    swarm,
    name,
    new Deno.Command(SYSTEM_PYTHON, {
      args: [LT_CLIENT, mode, torrent, dir, String(port)],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }),
  );
  await p.waitForLine(/^listening \d+$/, START_TIMEOUT_MS);
  return Object.assign(p, { port });
}

/**
 * The tracker serving `torrent` from the start (`--torrent`, which needs `--allow-read` besides
 * the `--allow-net` that `spawnEntry` grants it).
 */
async function startTrackerWithTorrent(swarm: Swarm, torrent: string): Promise<Proc> {
  const p = adopt(
    swarm,
    "tracker",
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--allow-net",
        "--allow-read",
        entryPath("tracker"),
        "--host",
        HOST,
        "--port",
        String(swarm.trackerPort),
        "--interval",
        "1",
        "--torrent",
        torrent,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }),
  );
  await p.waitForLine(/^tracker listening on /, START_TIMEOUT_MS);
  return p;
}

/** Writes the seed file (seed 7, as the swarm helpers do) and its .torrent with `make_file`. */
async function makeSeedAndTorrent(swarm: Swarm, size: number): Promise<string> {
  await writeTestFile(swarm.seedPath, size, { seed: 7 });
  swarm.size = size;
  const out = await spawnEntry("make_file", [
    "--size",
    String(size),
    "--out",
    swarm.seedPath,
    "--announce",
    new URL("/announce", swarm.trackerUrl).href,
    "--piece-length",
    "256KiB",
  ]).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, `make_file\n${text}`);
  assertStringIncludes(text, `wrote ${swarm.seedPath}.torrent`);
  return `${swarm.seedPath}.torrent`;
}

/** Waits for `p` to exit by itself; SIGKILLs it and fails after `timeoutMs`. */
async function waitForExit(p: Proc, timeoutMs: number): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const first = await Promise.race([p.status, timeout]);
    if (first === "timeout") {
      await p.stop("SIGKILL");
      throw new AssertionError(`${p.name} did not finish within ${timeoutMs} ms\n${p.describe()}`);
    }
    return await p.stop();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Writes a partial copy of `original` to `path`, as an interrupted download leaves it: the pieces
 * for which `keep(index)` is true, zeros elsewhere. Clients that find it check it and resume.
 */
async function writePartial(
  path: string,
  original: Uint8Array,
  keep: (index: number) => boolean,
): Promise<number> {
  const data = new Uint8Array(original.length);
  let kept = 0;
  for (let at = 0, i = 0; at < original.length; at += PIECE_LENGTH, i++) {
    if (!keep(i)) continue;
    data.set(original.subarray(at, Math.min(at + PIECE_LENGTH, original.length)), at);
    kept++;
  }
  await Deno.writeFile(path, data);
  return kept;
}

/** `3.0 MiB` → bytes (to the precision printed). */
function parseBytes(text: string): number {
  const m = /^([\d.]+) (B|KiB|MiB|GiB)$/.exec(text);
  if (!m) throw new AssertionError(`not a byte count: ${JSON.stringify(text)}`);
  const scale = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2]]!;
  return Number(m[1]) * scale;
}

/** What a stopped peer of ours printed per remote peer: label → bytes received and sent. */
function peerCounters(lines: string[]): Map<string, { received: number; sent: number }> {
  const out = new Map<string, { received: number; sent: number }>();
  const at = lines.findIndex((l) => l.startsWith("Leaving the swarm"));
  if (at < 0) return out;
  for (const l of lines.slice(at + 1)) {
    const m = /^ {2}(.+): received (.+), sent (.+)$/.exec(l);
    if (m) out.set(m[1], { received: parseBytes(m[2]), sent: parseBytes(m[3]) });
  }
  return out;
}

/** Bytes received from and sent to libtorrent peers, per the counters printed on SIGTERM. */
function libtorrentTotals(lines: string[]): { received: number; sent: number; peers: number } {
  let received = 0;
  let sent = 0;
  let peers = 0;
  for (const [label, c] of peerCounters(lines)) {
    if (!label.includes("(libtorrent)")) continue;
    received += c.received;
    sent += c.sent;
    peers++;
  }
  return { received, sent, peers };
}

// ---------------------------------------------------------------------------------------------
// 1. Real clients download from our seeder through our tracker

Deno.test("interop: a libtorrent leecher downloads from our seeder through our tracker", async () => {
  await requireLibtorrent();
  const swarm = await Swarm.create();
  try {
    const tracker = await swarm.startTracker();
    const seeder = await swarm.startSeeder(SMALL_SIZE);
    await seeder.waitForLine(/^Wrote .*seed\.bin\.torrent /);
    const dir = `${swarm.dir}/lt`;
    await Deno.mkdir(dir);
    const lt = await startLibtorrent(
      swarm,
      "libtorrent",
      "leech",
      `${swarm.seedPath}.torrent`,
      dir,
      freePort(),
    );
    await lt.waitForLine(/^complete$/, CLIENT_TIMEOUT_MS);
    await assertSameFile(`${dir}/${FILE}`, swarm.seedPath);
    // It announced over HTTP and told the tracker it completed.
    await tracker.waitForLine(new RegExp(`${HOST}:${lt.port} completed the download`));
    // Our seeder served it the whole file and says so, naming the client.
    assertEquals((await seeder.stop()).code, 0, seeder.describe());
    const sent = libtorrentTotals(seeder.lines).sent;
    assert(sent >= SMALL_SIZE * 0.99, `sent ${sent} bytes to libtorrent\n${seeder.describe()}`);
  } finally {
    await swarm.close();
  }
});

Deno.test("interop: an aria2c leecher downloads from our seeder through our tracker", async () => {
  await requireProgram("aria2c", "aria2");
  const swarm = await Swarm.create();
  try {
    const tracker = await swarm.startTracker();
    const seeder = await swarm.startSeeder(SMALL_SIZE);
    await seeder.waitForLine(/^Wrote .*seed\.bin\.torrent /);
    const dir = `${swarm.dir}/aria2`;
    const port = freePort();
    const aria2 = adopt(
      swarm,
      "aria2c",
      new Deno.Command("aria2c", {
        args: [
          "--no-conf=true",
          `--dir=${dir}`,
          "--seed-time=0",
          "--enable-dht=false",
          "--enable-dht6=false",
          "--bt-enable-lpd=false",
          "--enable-peer-exchange=false",
          `--listen-port=${port}`,
          "--summary-interval=0",
          "--console-log-level=warn",
          "--file-allocation=none",
          `${swarm.seedPath}.torrent`,
        ],
        env: { HOME: swarm.dir },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }),
    );
    // With --seed-time=0 it exits once the download is complete and checked.
    const status = await waitForExit(aria2, CLIENT_TIMEOUT_MS);
    assertEquals(status.code, 0, `aria2c exit code\n${aria2.describe()}`);
    await assertSameFile(`${dir}/${FILE}`, swarm.seedPath);
    // It announced over HTTP; stopping at once (--seed-time=0), it sends `stopped` with left=0
    // and never `completed`.
    await tracker.waitForLine(new RegExp(`${HOST}:${port} joined as leecher`));
    await tracker.waitForLine(new RegExp(`${HOST}:${port} left`));
    assertEquals((await seeder.stop()).code, 0, seeder.describe());
    assert(
      seeder.lines.some((l) => /^ {2}\S+ \(aria2\): received 0 B, sent 3\.0 MiB$/.test(l)),
      `the seeder names aria2 and what it sent\n${seeder.describe()}`,
    );
  } finally {
    await swarm.close();
  }
});

Deno.test("interop: a Transmission leecher (in a network namespace) downloads from our seeder", async () => {
  await requireProgram("transmission-cli", "transmission-cli");
  const ns = await Netns.create();
  const swarm = await Swarm.create();
  try {
    const host = ns.hostAddr;
    const trackerUrl = `http://${host}:${swarm.trackerPort}/`;
    const tracker = swarm.spawn("tracker", "tracker", [
      "--host",
      host,
      "--port",
      String(swarm.trackerPort),
      "--interval",
      "1",
    ]);
    await tracker.waitForLine(/^tracker listening on /, START_TIMEOUT_MS);
    await writeTestFile(swarm.seedPath, SMALL_SIZE, { seed: 7 });
    const seeder = swarm.spawn("peer", "seeder", [
      host,
      String(freePort()),
      "true",
      "--tracker",
      trackerUrl,
      "--dir",
      swarm.dir,
      "--file",
      FILE,
      "--piece-length",
      "256KiB",
    ]);
    await seeder.waitForLine(/^Seeding /, START_TIMEOUT_MS);

    const home = `${swarm.dir}/home`;
    const config = `${swarm.dir}/transmission`;
    const downloads = `${swarm.dir}/downloads`;
    for (const d of [home, config, downloads]) await Deno.mkdir(d);
    await Deno.writeTextFile(
      `${config}/settings.json`,
      JSON.stringify({
        "utp-enabled": false,
        "dht-enabled": false,
        "lpd-enabled": false,
        "pex-enabled": false,
        "port-forwarding-enabled": false,
        "encryption": 0,
        "rpc-enabled": false,
      }),
    );
    const port = freePort();
    const transmission = adopt(
      swarm,
      "transmission-cli",
      new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          ns.name,
          "transmission-cli",
          "-g",
          config,
          "-w",
          downloads,
          "-p",
          String(port),
          "-et",
          `${swarm.seedPath}.torrent`,
        ],
        env: { HOME: home },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }),
    );
    // transmission-cli never exits by itself: wait for the copy to equal the original.
    const original = await Deno.readFile(swarm.seedPath);
    const copy = `${downloads}/${FILE}`;
    try {
      await pollUntil(
        async () => sameBytes(await Deno.readFile(copy).catch(() => undefined), original),
        "Transmission's copy to match the original",
        CLIENT_TIMEOUT_MS,
        250,
      );
    } catch (e) {
      throw new AssertionError(`${(e as Error).message}\n${transmission.describe(10)}`, {
        cause: e,
      });
    }
    await assertSameFile(copy, swarm.seedPath);
    // It announced from inside the namespace, and the seeder served it by its address there.
    await tracker.waitForLine(new RegExp(`${ns.nsAddr.replaceAll(".", "\\.")}:${port} joined`));
    assertEquals((await seeder.stop()).code, 0, seeder.describe());
    assert(
      seeder.lines.some((l) =>
        l.startsWith(`  ${ns.nsAddr}:`) && /\(Transmission\): received 0 B, sent 3\.0 MiB$/.test(l)
      ),
      `the seeder names Transmission and what it sent\n${seeder.describe()}`,
    );
  } finally {
    await swarm.close();
    await ns.close();
  }
});

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// 2. Our leecher downloads from a libtorrent seeder

Deno.test("interop: our leecher downloads from a libtorrent seeder", async () => {
  await requireLibtorrent();
  const swarm = await Swarm.create();
  try {
    const torrent = await makeSeedAndTorrent(swarm, SMALL_SIZE);
    const tracker = await startTrackerWithTorrent(swarm, torrent);
    // libtorrent checks the complete file in the folder it is given, then seeds it.
    const seed = await startLibtorrent(
      swarm,
      "libtorrent seeder",
      "seed",
      torrent,
      swarm.dir,
      freePort(),
    );
    await seed.waitForLine(/^complete$/, CLIENT_TIMEOUT_MS);
    await tracker.waitForLine(new RegExp(`${HOST}:${seed.port} joined as seeder`));

    const leecher = swarm.startLeecher(["--torrent", torrent], "our leecher");
    await leecher.waitForLine(COMPLETE, CLIENT_TIMEOUT_MS);
    await assertSameFile(swarm.copyPath(leecher.port), swarm.seedPath);
    assertEquals((await leecher.stop()).code, 0, leecher.describe());
    const got = libtorrentTotals(leecher.lines);
    assert(
      got.received >= SMALL_SIZE * 0.99,
      `received the file from libtorrent\n${leecher.describe()}`,
    );
  } finally {
    await swarm.close();
  }
});

// ---------------------------------------------------------------------------------------------
// 3. A mixed swarm

Deno.test("interop: a mixed swarm of our peers and libtorrent trades pieces both ways", async () => {
  // On loopback our seeder serves a whole file before libtorrent has a piece to offer, so a
  // swarm that starts from nothing shows no trading with libtorrent at all. Here every leecher
  // resumes an interrupted download holding its own fifth of the pieces, and the seeder, the
  // only one with the last fifth, joins once the leechers have traded everything they can: each
  // of ours must get libtorrent's fifths from libtorrent (or via the other of ours) and
  // libtorrent must get ours from us, whatever the timing.
  await requireLibtorrent();
  const swarm = await Swarm.create();
  try {
    // 33 pieces of 256 KiB, the last one short and in the seeder's fifth.
    const size = 8 * 1024 * 1024 + 12345;
    const pieceCount = Math.ceil(size / PIECE_LENGTH);
    const group = (i: number) => (i === pieceCount - 1 ? 4 : i % 5);
    const torrent = await makeSeedAndTorrent(swarm, size);
    const original = await Deno.readFile(swarm.seedPath);
    await startTrackerWithTorrent(swarm, torrent);

    const held = (g: number) => [...Array(pieceCount).keys()].filter((i) => group(i) === g).length;
    const withoutSeeder = pieceCount - held(4);

    // Our leechers first, so that the libtorrent leechers learn them from their first announce.
    const leechers = [];
    for (const g of [0, 1]) {
      const port = freePort();
      await writePartial(swarm.copyPath(port), original, (i) => group(i) === g);
      const p = swarm.spawn("peer", `our leecher ${g}`, [
        ...swarm.peerArgs(port, false),
        "--torrent",
        torrent,
        "--quiet",
      ]);
      await p.waitForLine(
        new RegExp(`^Resumed with ${held(g)}/${pieceCount} pieces`),
        START_TIMEOUT_MS,
      );
      leechers.push(Object.assign(p, { port }));
    }
    const lts = [];
    for (const g of [2, 3]) {
      const dir = `${swarm.dir}/lt${g}`;
      await Deno.mkdir(dir);
      await writePartial(`${dir}/${FILE}`, original, (i) => group(i) === g);
      const lt = await startLibtorrent(
        swarm,
        `libtorrent leecher ${g}`,
        "leech",
        torrent,
        dir,
        freePort(),
      );
      lts.push(Object.assign(lt, { dir }));
    }

    // Without the seeder they can reach the four fifths between them, and only by trading.
    for (const l of leechers) {
      await l.waitForLine(
        new RegExp(`^Progress \\S+: ${withoutSeeder}/${pieceCount} `),
        CLIENT_TIMEOUT_MS,
      );
    }
    for (const lt of lts) {
      await lt.waitForLine(
        new RegExp(`^progress ${withoutSeeder}/${pieceCount}$`),
        CLIENT_TIMEOUT_MS,
      );
    }
    // The seeder joins late with the last fifth.
    const seeder = swarm.spawn("peer", "our seeder", [
      ...swarm.peerArgs(freePort(), true),
      "--piece-length",
      "256KiB",
    ]);
    await seeder.waitForLine(/^Seeding /, START_TIMEOUT_MS);
    for (const l of leechers) await l.waitForLine(COMPLETE, CLIENT_TIMEOUT_MS);
    for (const lt of lts) await lt.waitForLine(/^complete$/, CLIENT_TIMEOUT_MS);
    for (const l of leechers) await assertSameFile(swarm.copyPath(l.port), swarm.seedPath);
    for (const lt of lts) await assertSameFile(`${lt.dir}/${FILE}`, swarm.seedPath);

    for (const l of leechers) {
      assertEquals((await l.stop()).code, 0, l.describe());
      const t = libtorrentTotals(l.lines);
      assert(t.received > 0, `${l.name} received pieces from libtorrent\n${l.describe()}`);
      assert(t.sent > 0, `${l.name} sent pieces to libtorrent\n${l.describe()}`);
    }
  } finally {
    await swarm.close();
  }
});

Deno.test("interop: our leecher trades at once with a libtorrent leecher that joined before it", async () => {
  // libtorrent learns of peers only from its announces, which it repeats at most every 5 minutes
  // (its min_announce_interval, whatever our tracker's interval says), so a leecher of ours that
  // joins after it must dial it rather than wait to be dialled. Each holds half the file and no
  // seeder is there, so neither can finish without the other.
  await requireLibtorrent();
  const swarm = await Swarm.create();
  try {
    const torrent = await makeSeedAndTorrent(swarm, SMALL_SIZE);
    const original = await Deno.readFile(swarm.seedPath);
    const pieceCount = Math.ceil(SMALL_SIZE / PIECE_LENGTH);
    const tracker = await startTrackerWithTorrent(swarm, torrent);
    const dir = `${swarm.dir}/lt`;
    await Deno.mkdir(dir);
    const even = await writePartial(`${dir}/${FILE}`, original, (i) => i % 2 === 0);
    const lt = await startLibtorrent(
      swarm,
      "libtorrent leecher",
      "leech",
      torrent,
      dir,
      freePort(),
    );
    await lt.waitForLine(new RegExp(`^progress ${even}/${pieceCount}$`), CLIENT_TIMEOUT_MS);
    await tracker.waitForLine(new RegExp(`${HOST}:${lt.port} joined as leecher`));

    const port = freePort();
    const odd = await writePartial(swarm.copyPath(port), original, (i) => i % 2 === 1);
    const leecher = swarm.spawn("peer", "our leecher", [
      ...swarm.peerArgs(port, false),
      "--torrent",
      torrent,
    ]);
    await leecher.waitForLine(new RegExp(`^Resumed with ${odd}/${pieceCount} `), START_TIMEOUT_MS);
    const started = Date.now();
    // Long before libtorrent's next announce.
    await leecher.waitForLine(COMPLETE, 15_000);
    await lt.waitForLine(/^complete$/, Math.max(1, 15_000 - (Date.now() - started)));
    await assertSameFile(swarm.copyPath(port), swarm.seedPath);
    await assertSameFile(`${dir}/${FILE}`, swarm.seedPath);
  } finally {
    await swarm.close();
  }
});
