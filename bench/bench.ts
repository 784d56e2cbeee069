/**
 * `deno task bench`: one seeder and N leechers distribute a file over loopback, uncapped, through
 * the real tracker and peer processes. Prints, as the median of several runs after a warm-up, the
 * wall time until the last leecher holds a verified copy, aggregate MB/s, total CPU seconds and
 * each kind of process's peak RSS.
 *
 * @example
 * ```sh
 * deno task bench --leechers 4 --size 500MiB --runs 3 --json
 * ```
 * @module
 */

import { main, parseOptions, parseSize, UsageError } from "../lib/cli.ts";
import { downloadName } from "../lib/peer_app.ts";
import { freePort, readLines, spawnEntry, waitForPort } from "../lib/process.ts";
import { sha256File } from "../lib/swarm_runner.ts";
import { writeTestFile } from "../lib/test_file.ts";

const USAGE = `usage: deno task bench [options]
options:
  --leechers N   leechers (default 4)
  --size SIZE    file size (default 500MiB)
  --runs N       measured runs; the median is reported (default 3)
  --warmup N     unmeasured runs first (default 1)
  --pipeline N   blocks kept requested per peer (default: the peer's default)
  --verify       check every copy's SHA-256 after each run (off by default: peers already
                 verify every piece's SHA-1 before writing it)
  --json         print one JSON object as the last line`;

interface ProcUsage {
  cpu: number;
  rssMiB: number;
}

interface RunResult {
  wall: number;
  cpu: number;
  rss: { tracker: number; seeder: number; leecher: number };
}

const TICKS = 100; // USER_HZ on Linux

/**
 * Reads a /proc file through `cat`: Deno lets a script read /proc files directly only with
 * --allow-all, and a benchmark needs no more than --allow-run.
 */
async function readProc(path: string): Promise<string> {
  const out = await new Deno.Command("cat", { args: [path], stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(out.stdout);
}

async function usage(pid: number): Promise<ProcUsage> {
  const stat = await readProc(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(fields[11]) + Number(fields[12])) / TICKS;
  const status = await readProc(`/proc/${pid}/status`);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  return { cpu, rssMiB: hwm ? Number(hwm[1]) / 1024 : 0 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function oneRun(
  dir: string,
  leechers: number,
  extra: string[],
  verify: boolean,
): Promise<RunResult> {
  const host = "127.0.0.1";
  const trackerPort = freePort();
  const tracker = `http://${host}:${trackerPort}/`;
  const children: Deno.ChildProcess[] = [];
  const errors: string[] = [];
  const drain = (c: Deno.ChildProcess) => {
    readLines(c.stderr, (l) => errors.push(l));
  };
  try {
    const t = spawnEntry("tracker", ["--host", host, "--port", String(trackerPort)], {
      stdout: "null",
    });
    children.push(t);
    drain(t);
    await waitForPort(host, trackerPort);
    const args = (port: number, seeder: boolean) => [
      host,
      String(port),
      String(seeder),
      "--tracker",
      tracker,
      "--dir",
      dir,
      "--quiet",
      ...extra,
    ];
    const seedPort = freePort();
    const seeder = spawnEntry("peer", args(seedPort, true));
    children.push(seeder);
    drain(seeder);
    await new Promise<void>((resolve, reject) => {
      let ok = false;
      readLines(seeder.stdout, (l) => {
        if (!ok && l.startsWith("Seeding ")) {
          ok = true;
          resolve();
        }
      });
      seeder.status.then(() => ok || reject(new Error("seeder exited")));
    });
    const before = new Map<number, number>();
    for (const c of children) before.set(c.pid, (await usage(c.pid)).cpu);
    const t0 = performance.now();
    const ports: number[] = [];
    const done: Promise<void>[] = [];
    for (let i = 0; i < leechers; i++) {
      const port = freePort();
      ports.push(port);
      const c = spawnEntry("peer", args(port, false));
      children.push(c);
      drain(c);
      done.push(
        new Promise<void>((resolve, reject) => {
          let ok = false;
          readLines(c.stdout, (l) => {
            if (!ok && l.startsWith("DOWNLOAD COMPLETE!")) {
              ok = true;
              resolve();
            }
          });
          c.status.then(() =>
            ok || reject(new Error(`leecher on ${port} exited early: ${errors.join(" / ")}`))
          );
        }),
      );
    }
    await Promise.all(done);
    const wall = (performance.now() - t0) / 1000;
    let cpu = 0;
    const rss = { tracker: 0, seeder: 0, leecher: 0 };
    for (const [i, c] of children.entries()) {
      const u = await usage(c.pid);
      cpu += u.cpu - (before.get(c.pid) ?? 0);
      const kind = i === 0 ? "tracker" : i === 1 ? "seeder" : "leecher";
      rss[kind] = Math.max(rss[kind], u.rssMiB);
    }
    if (verify) {
      const want = await sha256File(`${dir}/ubuntu-teste.iso`);
      for (const p of ports) {
        const got = await sha256File(`${dir}/${downloadName(host, p, "ubuntu-teste.iso")}`);
        if (got !== want) throw new Error(`copy of leecher ${p} differs from the original`);
      }
    }
    for (const p of ports) {
      await Deno.remove(`${dir}/${downloadName(host, p, "ubuntu-teste.iso")}`).catch(() => {});
    }
    return { wall, cpu, rss };
  } finally {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch {
        // gone
      }
    }
    await Promise.allSettled(children.map((c) => c.status));
  }
}

if (import.meta.main) {
  await main(USAGE, async () => {
    const { values } = parseOptions({
      args: Deno.args,
      strict: true,
      options: {
        leechers: { type: "string", default: "4" },
        size: { type: "string", default: "500MiB" },
        runs: { type: "string", default: "3" },
        warmup: { type: "string", default: "1" },
        pipeline: { type: "string" },
        verify: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
      },
    });
    const leechers = Number(values.leechers);
    const runs = Number(values.runs);
    const warmup = Number(values.warmup);
    if (![leechers, runs].every((n) => Number.isInteger(n) && n >= 1)) {
      throw new UsageError("--leechers and --runs must be whole numbers of at least 1");
    }
    if (!Number.isInteger(warmup) || warmup < 0) throw new UsageError("--warmup must be >= 0");
    const size = parseSize(values.size, "--size");
    const extra = values.pipeline ? ["--pipeline", values.pipeline] : [];
    const dir = await Deno.makeTempDir({ prefix: "swarm-bench-" });
    try {
      await writeTestFile(`${dir}/ubuntu-teste.iso`, size);
      const cpuModel = (await readProc("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)
        ?.[1] ?? "unknown CPU";
      console.log(
        `bench: 1 seeder + ${leechers} leechers, ${size / 2 ** 20} MiB, loopback, uncapped; ` +
          `${navigator.hardwareConcurrency} cores (${cpuModel})`,
      );
      const results: RunResult[] = [];
      for (let i = 0; i < warmup + runs; i++) {
        const r = await oneRun(dir, leechers, extra, values.verify);
        const tag = i < warmup ? "warm-up" : `run ${i - warmup + 1}`;
        console.log(
          `${tag}: ${r.wall.toFixed(2)} s, ${(leechers * size / 1e6 / r.wall).toFixed(0)} MB/s, ` +
            `cpu ${r.cpu.toFixed(1)} s, peak RSS tracker ${r.rss.tracker.toFixed(0)} MiB, ` +
            `seeder ${r.rss.seeder.toFixed(0)} MiB, leecher ${r.rss.leecher.toFixed(0)} MiB`,
        );
        if (i >= warmup) results.push(r);
      }
      const wall = median(results.map((r) => r.wall));
      const summary = {
        wall_s: Number(wall.toFixed(3)),
        walls_s: results.map((r) => Number(r.wall.toFixed(3))),
        mib_per_s: Number((leechers * size / 2 ** 20 / wall).toFixed(1)),
        cpu_s: Number(median(results.map((r) => r.cpu)).toFixed(2)),
        max_rss_mib: {
          tracker: Math.round(Math.max(...results.map((r) => r.rss.tracker))),
          seeder: Math.round(Math.max(...results.map((r) => r.rss.seeder))),
          leecher: Math.round(Math.max(...results.map((r) => r.rss.leecher))),
        },
      };
      console.log(
        `median of ${runs}: ${summary.wall_s} s wall, ${summary.mib_per_s} MiB/s aggregate, ` +
          `${summary.cpu_s} CPU s; peak RSS tracker ${summary.max_rss_mib.tracker} MiB, seeder ` +
          `${summary.max_rss_mib.seeder} MiB, leecher ${summary.max_rss_mib.leecher} MiB`,
      );
      if (values.json) console.log(JSON.stringify(summary));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
