/**
 * A real network: the tracker, a seeder and three leechers each on a host of its own (a network
 * namespace, see {@linkcode Lan}) behind one switch (a bridge), every link impaired with latency
 * and 1% random loss. Mid-transfer one leecher's cable is pulled at the switch and plugged back
 * a few seconds later; every leecher must end with a byte-identical copy.
 *
 * The impairment is `tc netem` (delay and loss on each host's egress) when the kernel has it.
 * Kernels built without netem (the project's VMs) get the nearest real thing instead: 1% of the
 * packets each host receives are dropped by nftables (`numgen random`), and each host's uplink
 * is shaped with `tbf` to 8 Mbit/s, whose queue delays packets whenever the link is busy (queueing
 * delay, not netem's fixed latency: no other qdisc here can hold a packet back). Either way the
 * test prints what it applied and asserts, from the kernel's own counters, that it acted: about
 * 1% of the packets dropped (netem's or nftables' counters), and the delay (with netem every TCP
 * round trip `ss` reports is at least twice the delay; with tbf the queues' sampled backlog shows
 * packets waiting), so it cannot pass over an unimpaired network by mistake.
 *
 * Needs root, iproute2 (`ip`, `tc`, `ss`) and, without netem, nftables (`nft`); `.ci/run`
 * installs them. A missing one fails the test with a sentence naming it.
 *
 * @example
 * ```sh
 * deno test -P tests/network_test.ts
 * ```
 * @module
 */

import { downloadName } from "../lib/peer_app.ts";
import { type Entry, entryPath, PERMISSIONS } from "../lib/process.ts";
import { writeTestFile } from "../lib/test_file.ts";
import { assert, AssertionError } from "./assert.ts";
import { Lan, requireProgram, run } from "./netns.ts";
import {
  assertSameFile,
  FILE,
  PIECE_LENGTH,
  piecesIntact,
  piecesOnDisk,
  pollUntil,
  Proc,
  START_TIMEOUT_MS,
  Swarm,
} from "./swarm_helpers.ts";

/** 16 whole pieces of 256 KiB and a short one. */
const SIZE = 4 * 1024 * 1024 + 12345;
const PIECES = Math.ceil(SIZE / PIECE_LENGTH);
/** The seeder's upload cap: with it the download lasts several seconds, long enough to cut. */
const SEED_RATE = "1MiB/s";
const TRACKER_PORT = 8000;
/** Every peer listens on this port on its own host. */
const PEER_PORT = 9000;
const LEECHERS = ["leecher1", "leecher2", "leecher3"];
const COMPLETE = /^DOWNLOAD COMPLETE! /;
/** leecher1 stays cut off until both other leechers have gained this many pieces. */
const HOLD_PIECES = 8;

/** netem: one-way delay added to every packet a host sends, so a round trip gains twice it. */
const NETEM_DELAY_MS = 20;
const LOSS_PERCENT = 1;
/**
 * Without netem, each host's uplink is shaped to 8 Mbit/s (1 MB/s, just under the seeder's
 * cap, so its link stays busy) with up to 40 ms of queue: on a busy link packets wait, up to
 * 40 ms plus the burst, as behind a real bottleneck.
 */
const TBF = { rate: "8mbit", burst: "16kb", latency: "40ms" };
/**
 * The longest wait in a tbf queue seen during the transfer must reach this: a quarter of the
 * queue's capacity (an unshaped veth queues nothing).
 */
const TBF_MIN_QUEUE_MS = 10;

/** What the kernel says the impairment did. */
interface Effect {
  /** Packets dropped on purpose (random loss), all hosts together. */
  lost: number;
  /** Packets that went through the lossy stage, all hosts together. */
  seen: number;
  /** Times a tbf queue had a packet to send but no tokens yet (tbf only). */
  delayed: number;
  /**
   * Packets a full tbf queue refused (tbf only). The sending TCP is told at once and slows
   * down, so this is back-pressure, not loss on the wire.
   */
  overflow: number;
}

/** What was applied to every host's link, and how to read back what it did. */
interface Impairment {
  /** One line for the test's output. */
  description: string;
  /** Reads the kernel's counters. */
  measure(): Promise<Effect>;
  /** Fails unless the samples show the delay this impairment must cause; describes them. */
  checkDelay(samples: Samples): string;
}

/** Measurements taken while the file is on its way. */
interface Samples {
  /** Smoothed round-trip times (ms) of the peers' TCP connections, as the kernel keeps them. */
  rtts: number[];
  /** How long the bytes waiting in each host's root qdisc take to leave at its rate (ms). */
  queueMs: number[];
}

/** `tc -s qdisc` statistics of `host`'s eth0 root qdisc (rate in bytes/s, tbf only). */
async function qdiscStats(lan: Lan, host: string): Promise<QdiscStats> {
  const text = await run("tc", ["-n", lan.ns[host], "-s", "-j", "qdisc", "show", "dev", "eth0"]);
  const root = (JSON.parse(text) as QdiscStats[]).find((q) => q.root);
  if (!root) throw new Error(`no root qdisc on ${host}'s eth0:\n${text}`);
  return root;
}

/** The fields of `tc -s -j qdisc` output used here. */
interface QdiscStats {
  kind: string;
  root?: boolean;
  options?: { rate?: number };
  packets: number;
  drops: number;
  overlimits: number;
  backlog: number;
}

/**
 * netem on every host when the kernel has it; otherwise tbf shaping plus nftables loss. Applied
 * before any process starts, so the whole run crosses an impaired network.
 */
async function impair(lan: Lan): Promise<Impairment> {
  await requireProgram("tc", "iproute2");
  const netem = [
    "netem",
    "delay",
    `${NETEM_DELAY_MS}ms`,
    "loss",
    `${LOSS_PERCENT}%`,
  ];
  let haveNetem = true;
  for (const h of lan.hosts) {
    try {
      await run("tc", ["-n", lan.ns[h], "qdisc", "add", "dev", "eth0", "root", ...netem]);
    } catch (e) {
      // "Specified qdisc kind is unknown.": CONFIG_NET_SCH_NETEM is not set.
      if (h !== lan.hosts[0] || !/qdisc kind is unknown/.test((e as Error).message)) throw e;
      haveNetem = false;
      break;
    }
  }
  if (haveNetem) {
    return {
      description: `tc netem on every host's eth0: delay ${NETEM_DELAY_MS} ms, loss ` +
        `${LOSS_PERCENT}%`,
      async measure() {
        const e: Effect = { lost: 0, seen: 0, delayed: 0, overflow: 0 };
        for (const h of lan.hosts) {
          const s = await qdiscStats(lan, h);
          e.lost += s.drops;
          e.seen += s.packets + s.drops;
        }
        return e;
      },
      checkDelay({ rtts }) {
        // Each way crosses one host's netem: every TCP round trip takes at least twice the delay.
        assert(rtts.length > 0, "no TCP connection was seen to measure round trips on");
        const least = Math.min(...rtts);
        assert(
          least >= 2 * NETEM_DELAY_MS * 0.95,
          `netem adds ${2 * NETEM_DELAY_MS} ms to every round trip, yet TCP measured ${least} ms`,
        );
        return `TCP round trips ${describe(rtts)}`;
      },
    };
  }

  try {
    await requireProgram("nft", "nftables");
  } catch (e) {
    throw new AssertionError(
      `this kernel has no tc netem, so the network test drops packets with nftables: ` +
        (e as Error).message,
      { cause: e },
    );
  }
  for (const h of lan.hosts) {
    await run("tc", [
      "-n",
      lan.ns[h],
      "qdisc",
      "add",
      "dev",
      "eth0",
      "root",
      "tbf",
      "rate",
      TBF.rate,
      "burst",
      TBF.burst,
      "latency",
      TBF.latency,
    ]);
    // Dropped on arrival, as a lossy wire would, so the sender learns of it only by its absence
    // (a drop on the sender's own output path would be reported to its TCP at once).
    await lan.exec(h, [
      "nft",
      [
        "add table netdev swn;",
        'add chain netdev swn lossy { type filter hook ingress device "eth0" priority 0; };',
        "add rule netdev swn lossy counter;",
        `add rule netdev swn lossy numgen random mod 100 < ${LOSS_PERCENT} counter drop;`,
      ].join(" "),
    ]);
  }
  return {
    description: `no netem in this kernel: ${LOSS_PERCENT}% random loss on every host's eth0 ` +
      `ingress (nftables numgen), and tbf on its egress (rate ${TBF.rate}, burst ${TBF.burst}, ` +
      `latency ${TBF.latency}) for queueing delay`,
    async measure() {
      const e: Effect = { lost: 0, seen: 0, delayed: 0, overflow: 0 };
      for (const h of lan.hosts) {
        const rules = await lan.exec(h, ["nft", "list", "chain", "netdev", "swn", "lossy"]);
        const counters = [...rules.matchAll(/counter packets (\d+) bytes \d+( drop)?/g)];
        const all = counters.find((m) => m[2] === undefined);
        const dropped = counters.find((m) => m[2] !== undefined);
        if (!all || !dropped) throw new Error(`unexpected nft output on ${h}:\n${rules}`);
        e.seen += Number(all[1]);
        e.lost += Number(dropped[1]);
        const s = await qdiscStats(lan, h);
        e.delayed += s.overlimits;
        e.overflow += s.drops;
      }
      return e;
    },
    checkDelay({ rtts, queueMs }) {
      // Queueing delay comes and goes with the load; the busiest moments must show it.
      const busy = queueMs.filter((q) => q > 0);
      const most = Math.max(0, ...queueMs);
      assert(
        most >= TBF_MIN_QUEUE_MS,
        `the tbf queues should have delayed packets on the busy links, yet the longest wait ` +
          `sampled was ${most.toFixed(1)} ms`,
      );
      return `tbf queueing delay ${describe(busy)} when busy (${busy.length} of ` +
        `${queueMs.length} samples); TCP round trips ${describe(rtts)}`;
    },
  };
}

/**
 * Samples, until stopped, the smoothed round-trip time of every established TCP connection in
 * `peers` (`ss -ti`) and the backlog of every host's root qdisc, as the kernel counts them: they
 * describe the network the transfer actually crossed.
 */
function sample(lan: Lan, peers: string[]): { stop(): Promise<Samples> } {
  const samples: Samples = { rtts: [], queueMs: [] };
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const h of peers) {
        const text = await lan.exec(h, ["ss", "-tinH", "state", "established"]).catch(() => "");
        for (const m of text.matchAll(/\brtt:([\d.]+)\//g)) samples.rtts.push(Number(m[1]));
      }
      for (const h of lan.hosts) {
        const q = await qdiscStats(lan, h).catch(() => undefined);
        if (q?.options?.rate) samples.queueMs.push(1000 * q.backlog / q.options.rate);
      }
      // A measurement cadence, not synchronisation: nothing waits on it.
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** Starts an entrypoint inside `host`'s namespace, with its own permissions (as spawnEntry). */
function spawnIn(swarm: Swarm, lan: Lan, host: string, entry: Entry, args: string[]): Proc {
  const p = new Proc(
    host,
    new Deno.Command("ip", {
      args: [
        ...lan.execArgs(host),
        Deno.execPath(),
        "run",
        "--quiet",
        "--no-prompt",
        ...PERMISSIONS[entry],
        entryPath(entry),
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
  );
  swarm.procs.push(p);
  return p;
}

/** `min / median / max` of some milliseconds. */
function describe(ms: number[]): string {
  if (ms.length === 0) return "(none)";
  const s = [...ms].sort((a, b) => a - b);
  const f = (x: number) => x.toFixed(x < 1 ? 2 : 1);
  return `min ${f(s[0])} / median ${f(s[Math.floor(s.length / 2)])} / max ${f(s.at(-1)!)} ms`;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

Deno.test("network: 5 hosts on a lossy, slow switch; a leecher's cable cut mid-transfer", async () => {
  const hosts = ["tracker", "seeder", ...LEECHERS];
  await requireProgram("ss", "iproute2");
  const lan = await Lan.create(hosts);
  let swarm: Swarm | undefined;
  let sampler: { stop(): Promise<Samples> } | undefined;
  try {
    swarm = await Swarm.create();
    const impairment = await impair(lan);
    console.log(`impairment: ${impairment.description}`);

    const trackerUrl = `http://${lan.addr("tracker")}:${TRACKER_PORT}/`;
    const tracker = spawnIn(swarm, lan, "tracker", "tracker", [
      "--host",
      lan.addr("tracker"),
      "--port",
      String(TRACKER_PORT),
      "--interval",
      "1",
    ]);
    await tracker.waitForLine(/^tracker listening on /, START_TIMEOUT_MS);

    await writeTestFile(swarm.seedPath, SIZE, { seed: 7 });
    const original = await Deno.readFile(swarm.seedPath);
    const common = ["--tracker", trackerUrl, "--dir", swarm.dir, "--file", FILE];
    const seeder = spawnIn(swarm, lan, "seeder", "peer", [
      lan.addr("seeder"),
      String(PEER_PORT),
      "true",
      ...common,
      "--piece-length",
      "256KiB",
      "--up-rate",
      SEED_RATE,
    ]);
    await seeder.waitForLine(/^Seeding /, START_TIMEOUT_MS);

    const started = Date.now();
    sampler = sample(lan, ["seeder", ...LEECHERS]);
    const leechers = LEECHERS.map((h) => {
      const p = spawnIn(swarm!, lan, h, "peer", [
        lan.addr(h),
        String(PEER_PORT),
        "false",
        ...common,
        "--quiet",
      ]);
      return Object.assign(p, {
        copy: `${swarm!.dir}/${downloadName(lan.addr(h), PEER_PORT, FILE)}`,
      });
    });
    const [victim, ...others] = leechers;

    // Cut its cable once it holds verified pieces, well before it could finish.
    await pollUntil(
      () => piecesOnDisk(victim.copy, original) >= 2,
      "leecher1's first verified pieces",
      START_TIMEOUT_MS,
      10,
    );
    await lan.cut("leecher1");
    const cutAt = Date.now();
    const heldAtCut = await piecesIntact(victim.copy, original);
    assert(
      heldAtCut < PIECES && !victim.lines.some((l) => COMPLETE.test(l)),
      `leecher1 was cut mid-transfer (it held ${heldAtCut}/${PIECES} pieces)`,
    );
    const othersAtCut = others.map((o) => piecesOnDisk(o.copy, original));

    // The rest of the swarm goes on without it: both others gain pieces while it is cut off.
    const gained = () => others.map((o, i) => piecesOnDisk(o.copy, original) - othersAtCut[i]);
    await pollUntil(
      () => gained().every((g) => g >= HOLD_PIECES),
      `the other leechers to gain ${HOLD_PIECES} pieces each while leecher1 is cut off`,
      30_000,
      50,
    );
    const gainedWhileCut = gained();
    const heldAtRestore = await piecesIntact(victim.copy, original);
    // Cut off, it gains nothing (but a piece whose bytes were already in before the cut).
    assert(
      heldAtRestore <= heldAtCut + 1 && !victim.lines.some((l) => COMPLETE.test(l)),
      `leecher1 went from ${heldAtCut} to ${heldAtRestore}/${PIECES} pieces while cut off`,
    );
    await lan.restore("leecher1");
    const restoredAt = Date.now();

    const doneAt = new Map<string, number>();
    await Promise.all(leechers.map(async (l) => {
      await l.waitForLine(COMPLETE, 60_000);
      doneAt.set(l.name, Date.now());
    }));
    const samples = await sampler.stop();
    sampler = undefined;
    for (const l of leechers) await assertSameFile(l.copy, swarm.seedPath);

    const effect = await impairment.measure();
    const lossPct = 100 * effect.lost / effect.seen;
    const cutFor = restoredAt - cutAt;
    const done = leechers.map((l) => `${l.name} ${secs(doneAt.get(l.name)! - started)}`);
    console.log(
      `cut leecher1 at ${secs(cutAt - started)} holding ${heldAtCut}/${PIECES} pieces, ` +
        `restored after ${secs(cutFor)} (meanwhile the others gained ` +
        `${gainedWhileCut.join(" and ")} pieces, leecher1 held ${heldAtRestore}); ` +
        `complete at ${done.join(", ")}`,
    );
    console.log(
      `measured: ${effect.lost} of ${effect.seen} packets lost (${lossPct.toFixed(2)}%)` +
        (effect.delayed > 0 || effect.overflow > 0
          ? `; tbf queues waited for tokens ${effect.delayed} times and refused ` +
            `${effect.overflow} packets when full (back-pressure on the sender, not loss)`
          : ""),
    );
    // The impairment acted: roughly 1% lost, and the delay shows in the samples.
    assert(effect.lost > 0, `no packet was dropped: the loss is not in effect`);
    assert(
      lossPct > LOSS_PERCENT / 4 && lossPct < LOSS_PERCENT * 4,
      `${lossPct.toFixed(2)}% of packets lost, not about ${LOSS_PERCENT}%`,
    );
    console.log(`measured: ${impairment.checkDelay(samples)}`);
  } catch (e) {
    if (!(e instanceof AssertionError) || !swarm?.procs.length) throw e;
    const logs = swarm.procs.map((p) => p.describe(15)).join("\n");
    throw new AssertionError(`${e.message}\n${logs}`, { cause: e });
  } finally {
    await sampler?.stop();
    await swarm?.close();
    await lan.close();
  }
  const left = await lan.leftovers();
  assert(left.length === 0, `namespaces left behind: ${left.join(", ")}`);
});
