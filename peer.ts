/**
 * `peer HOST PORT IS_SEEDER`: one member of the swarm. A seeder (true) serves the whole file; a
 * leecher (false) downloads it rarest first from several peers, serves what it has meanwhile,
 * and stays on as a seeder when complete.
 *
 * @example
 * ```sh
 * deno run --allow-net --allow-read --allow-write peer.ts localhost 9000 true
 * deno run --allow-net --allow-read --allow-write peer.ts localhost 9001 false
 * ```
 * @module
 */

import {
  FatalError,
  main,
  parseBool,
  parseCount,
  parseOptions,
  parsePort,
  parseRate,
  parseSeconds,
  parseSize,
  UsageError,
} from "./lib/cli.ts";
import { DEFAULT_TUNING, type EngineTuning } from "./lib/engine.ts";
import { FD_RESERVE, fitPeers, freeDescriptors } from "./lib/fd_limit.ts";
import { parseTorrent } from "./lib/metainfo.ts";
import { runPeer } from "./lib/peer_app.ts";

/** The announce URL of a .torrent, to find its tracker when --tracker is not given. */
async function readTorrentAnnounce(path: string): Promise<{ announce?: string }> {
  try {
    return await parseTorrent(await Deno.readFile(path));
  } catch (e) {
    throw new FatalError(`cannot use ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

const USAGE = `usage: peer HOST PORT IS_SEEDER [options]
  HOST PORT            where this peer listens for other peers, e.g. localhost 9001
  IS_SEEDER            true: serve the complete file; false: download it
options:
  --tracker URL        the tracker's XML-RPC URL (default http://localhost:8000/, or the
                       announce URL's host and port of --torrent)
  --torrent FILE       a leecher takes the file's metainfo from this .torrent (and publishes
                       it to the tracker) instead of waiting for a seeder to publish it
  --file NAME          the file a seeder serves (default ubuntu-teste.iso)
  --dir DIR            folder for the seed file and downloads (default .)
  --piece-length SIZE  piece size a seeder hashes with (default 1MiB)
  --pipeline N         blocks kept requested per peer (default 128)
  --up-rate RATE       cap this peer's upload, all connections together (e.g. 4MiB/s)
  --down-rate RATE     cap this peer's download likewise
  --client-server      upload nothing to anyone (a client of a client-server download)
  --upload-slots N     regular unchoke slots (default 4)
  --rechoke SECS       seconds between rechokes (default 10)
  --snub SECS          a peer that sends nothing for this long loses our requests (default 20)
  --max-peers N        most peer connections at once (default 50; fewer if the open-files
                       limit, ulimit -n, has no room for them)
  --max-peers-per-ip N most connections with one IP address (default 8, loopback exempt;
                       when given, it applies to loopback addresses too)
  --hold               once set up and registered, print READY and wait for a line on
                       standard input before joining (scripts start many peers together)
  --quiet              print progress without the per-peer piece lines
  --help               show this help`;

if (import.meta.main) {
  await main(USAGE, async () => {
    const parsed = parseOptions({
      args: Deno.args,
      allowPositionals: true,
      strict: true,
      options: {
        tracker: { type: "string" },
        torrent: { type: "string" },
        file: { type: "string", default: "ubuntu-teste.iso" },
        dir: { type: "string", default: "." },
        "piece-length": { type: "string" },
        pipeline: { type: "string" },
        quiet: { type: "boolean", default: false },
        hold: { type: "boolean", default: false },
        "up-rate": { type: "string" },
        "down-rate": { type: "string" },
        "client-server": { type: "boolean", default: false },
        "upload-slots": { type: "string" },
        rechoke: { type: "string" },
        snub: { type: "string" },
        "max-peers": { type: "string" },
        "max-peers-per-ip": { type: "string" },
        help: { type: "boolean", default: false },
      },
    });
    const { values, positionals } = parsed;
    if (values.help) {
      console.log(USAGE);
      return;
    }
    if (positionals.length !== 3) {
      throw new UsageError(`expected HOST PORT IS_SEEDER, got ${positionals.length} argument(s)`);
    }
    const [host, portText, seederText] = positionals;
    if (host.trim() === "") throw new UsageError("HOST must not be empty");
    const port = parsePort(portText, "PORT");
    const seeder = parseBool(seederText, "IS_SEEDER");
    if (values.torrent !== undefined && seeder) {
      throw new UsageError("--torrent is for leechers; a seeder makes the .torrent itself");
    }
    let trackerText = values.tracker;
    if (trackerText === undefined && values.torrent !== undefined) {
      const { announce } = await readTorrentAnnounce(values.torrent);
      trackerText = announce;
    }
    let tracker: URL;
    try {
      tracker = new URL("/", trackerText ?? "http://localhost:8000/");
      if (values.tracker !== undefined) tracker = new URL(values.tracker);
    } catch {
      throw new UsageError(`--tracker must be a URL such as http://localhost:8000/`);
    }
    const pieceLength = values["piece-length"] === undefined
      ? undefined
      : parseSize(values["piece-length"], "--piece-length");
    if (pieceLength !== undefined && (pieceLength < 16384 || pieceLength > 16 << 20)) {
      throw new UsageError("--piece-length must be between 16KiB and 16MiB");
    }
    const tuning: Partial<EngineTuning> = {};
    if (values.pipeline !== undefined) {
      tuning.pipeline = parseCount(values.pipeline, "--pipeline", 1, 1024);
    }
    if (values["upload-slots"] !== undefined) {
      tuning.uploadSlots = parseCount(values["upload-slots"], "--upload-slots", 1, 64);
    }
    if (values.rechoke !== undefined) {
      tuning.rechokeMs = parseSeconds(values.rechoke, "--rechoke") * 1000;
    }
    if (values.snub !== undefined) {
      tuning.requestTimeoutMs = parseSeconds(values.snub, "--snub") * 1000;
    }
    if (values["max-peers"] !== undefined) {
      tuning.maxPeers = parseCount(values["max-peers"], "--max-peers", 1, 10000);
    }
    if (values["max-peers-per-ip"] !== undefined) {
      tuning.maxPeersPerIp = parseCount(values["max-peers-per-ip"], "--max-peers-per-ip", 1, 10000);
      // Asked for explicitly: the user means every address, loopback included.
      tuning.exemptLoopback = false;
    }
    const upRate = values["up-rate"] === undefined
      ? undefined
      : parseRate(values["up-rate"], "--up-rate");
    const downRate = values["down-rate"] === undefined
      ? undefined
      : parseRate(values["down-rate"], "--down-rate");
    // Every connection is a file descriptor: check the open-files limit now rather than fail
    // to accept or dial mid-download.
    const maxPeers = tuning.maxPeers ?? DEFAULT_TUNING.maxPeers;
    const fit = fitPeers(maxPeers, freeDescriptors(maxPeers + FD_RESERVE));
    if (fit.kind === "cannot") throw new FatalError(fit.message);
    if (fit.kind === "lowered") {
      console.log(fit.message);
      tuning.maxPeers = fit.maxPeers;
    }
    await runPeer({
      host,
      port,
      seeder,
      tracker: tracker.href,
      file: values.file,
      dir: values.dir,
      pieceLength,
      quiet: values.quiet,
      torrent: values.torrent,
      hold: values.hold,
      tuning,
      upRate,
      downRate,
      noUpload: values["client-server"],
    });
    Deno.exit(0);
  });
}
