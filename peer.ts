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

import { parseArgs } from "node:util";
import { FatalError, main, parseBool, parsePort, parseSize, UsageError } from "./lib/cli.ts";
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
  --quiet              print progress without the per-peer piece lines
  --help               show this help`;

if (import.meta.main) {
  await main(USAGE, async () => {
    let parsed;
    try {
      parsed = parseArgs({
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
          help: { type: "boolean", default: false },
        },
      });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      console.log(USAGE);
      return;
    }
    if (positionals.length !== 3) {
      throw new UsageError(`expected HOST PORT IS_SEEDER, got ${positionals.length} argument(s)`);
    }
    const [host, portText, seederText] = positionals;
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
    let pipeline: number | undefined;
    if (values.pipeline !== undefined) {
      pipeline = Number(values.pipeline);
      if (!Number.isInteger(pipeline) || pipeline < 1 || pipeline > 1024) {
        throw new UsageError("--pipeline must be a whole number from 1 to 1024");
      }
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
      tuning: pipeline === undefined ? {} : { pipeline },
    });
    Deno.exit(0);
  });
}
