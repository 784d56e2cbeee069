/**
 * The swarm tracker: peers register, publish the metainfo and report progress over XML-RPC;
 * the terminal shows a live dashboard (or plain log lines when output is not a terminal).
 * Needs only `--allow-net`.
 *
 * @example
 * ```sh
 * deno run --allow-net tracker.ts --port 8000
 * # tracker listening on http://localhost:8000/ (XML-RPC)
 * ```
 * @module
 */

import { FatalError, main, parseOptions, parsePort, systemReason, UsageError } from "./lib/cli.ts";
import {
  HIDE_CURSOR,
  type LogEvent,
  renderDashboard,
  renderLogLine,
  screenFrame,
  SHOW_CURSOR,
} from "./lib/dashboard.ts";
import { DEFAULT_INTERVAL, EXPIRY_INTERVALS, Registry, type Snapshot } from "./lib/registry.ts";
import { announceRoutes } from "./lib/http_tracker.ts";
import { parseTorrent } from "./lib/metainfo.ts";
import { trackerMethods } from "./lib/tracker_methods.ts";
import { XmlRpcHttpServer } from "./lib/xmlrpc_server.ts";

const USAGE =
  "usage: tracker [--host localhost] [--port 8000] [--interval 2] [--torrent FILE.torrent]";

const HELP = `${USAGE}

Runs the swarm tracker: XML-RPC on http://HOST:PORT/ for our peers, and BitTorrent's HTTP
announce (BEP 3) at http://HOST:PORT/announce and scrape (BEP 48) at /scrape for any client.

options:
  --host HOST      address to listen on (default localhost)
  --port PORT      TCP port to listen on (default 8000)
  --interval SECS  seconds between peer progress reports (default ${DEFAULT_INTERVAL});
                   peers silent for ${EXPIRY_INTERVALS} intervals are dropped
  --torrent FILE   serve this .torrent from the start, so BitTorrent clients can announce
                   before any of our seeders publishes (needs --allow-read)
  -h, --help       show this help`;

/** How often plain-log mode prints progress lines. */
const PROGRESS_LOG_MS = 5000;
/** Widest dashboard, however wide the terminal. */
const MAX_DASHBOARD_WIDTH = 110;

interface Args {
  host: string;
  port: number;
  interval: number;
  torrent: string | undefined;
}

function parse(argv: string[]): Args | "help" {
  const { values } = parseOptions({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      interval: { type: "string" },
      torrent: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const host = values.host ?? "localhost";
  if (host.trim() === "") throw new UsageError("--host must not be empty");
  const port = parsePort(values.port ?? "8000", "--port");
  const interval = values.interval === undefined ? DEFAULT_INTERVAL : Number(values.interval);
  if (!/^\d+(\.\d+)?$/.test(values.interval ?? "1") || !(interval > 0) || interval > 3600) {
    throw new UsageError("--interval must be a number of seconds above 0 and at most 3600");
  }
  return { host, port, interval, torrent: values.torrent };
}

function statusPage(s: Snapshot, url: string): string {
  const seeders = s.peers.filter((p) => p.role === "seeder").length;
  const file = s.metainfo
    ? `${s.metainfo.name} (${s.metainfo.pieceCount} pieces, info-hash ${s.metainfo.infoHash})`
    : "none published yet";
  return [
    `swarm tracker at ${url}`,
    `peers: ${s.peers.length} (${seeders} seeding, ${s.peers.length - seeders} leeching)`,
    `file: ${file}`,
    `XML-RPC: POST to / or /RPC2`,
    "",
  ].join("\n");
}

async function preload(registry: Registry, path: string): Promise<void> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      throw new FatalError(
        `reading ${path} needs --allow-read (deno run --allow-net --allow-read)`,
      );
    }
    throw new FatalError(`cannot read ${path}: ${systemReason(e)}`, { cause: e });
  }
  try {
    const { meta } = await parseTorrent(bytes);
    await registry.preload(meta.info);
  } catch (e) {
    throw new FatalError(`${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

const encoder = new TextEncoder();

function writeAll(text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

await main(USAGE, async () => {
  const parsed = parse(Deno.args);
  if (parsed === "help") {
    console.log(HELP);
    return;
  }
  const args: Args = parsed;
  const tty = Deno.stdout.isTerminal();
  let lastError = "";
  let redrawTimer: ReturnType<typeof setTimeout> | undefined;
  const registry = new Registry({
    interval: args.interval,
    onEvent: (event) => {
      if (tty) scheduleRedraw();
      else log(event);
    },
  });
  if (args.torrent !== undefined) await preload(registry, args.torrent);
  const server: XmlRpcHttpServer = new XmlRpcHttpServer({
    methods: trackerMethods(registry),
    routes: announceRoutes(registry),
    statusPage: (): string => statusPage(registry.snapshot(), server.url),
    onError: (e, where) => {
      const msg = `internal error in ${where}: ${e instanceof Error ? e.message : String(e)}`;
      if (tty) lastError = msg;
      else console.error(msg);
    },
  });
  await server.listen(args.port, args.host);
  const url = server.url;
  const banner = `tracker listening on ${url} (XML-RPC; BitTorrent announce at ${url}announce)`;
  console.log(banner);

  function log(event: LogEvent): void {
    console.log(renderLogLine(event));
  }

  function draw(): void {
    redrawTimer = undefined;
    let size = { columns: 80, rows: 24 };
    try {
      size = Deno.consoleSize();
    } catch {
      // Not a console after all (e.g. redirected mid-run): keep the defaults.
    }
    // One column short of the edge: writing the last column leaves the cursor in a pending
    // wrap, where some terminals let the next clear-to-end-of-line erase that column.
    const width = Math.min(MAX_DASHBOARD_WIDTH, size.columns - 1);
    const box = renderDashboard(registry.snapshot(), {
      width,
      height: size.rows - 3,
      color: !Deno.noColor,
    });
    const footer = lastError !== ""
      ? lastError
      : `peers report every ${args.interval} s; Ctrl-C stops the tracker`;
    writeAll(screenFrame([banner, ...box.split("\n"), footer.slice(0, width)]));
  }

  function scheduleRedraw(): void {
    // Coalesce bursts of events (a swarm starting) into one frame.
    redrawTimer ??= setTimeout(draw, 50);
  }

  const timers: ReturnType<typeof setInterval>[] = [];
  timers.push(setInterval(() => registry.expire(), 1000));
  if (tty) {
    writeAll(HIDE_CURSOR + "\x1b[2J");
    // Whatever ends the process, leave the cursor visible.
    globalThis.addEventListener("unload", () => writeAll(SHOW_CURSOR));
    draw();
    timers.push(setInterval(draw, 1000));
    if (Deno.build.os !== "windows") Deno.addSignalListener("SIGWINCH", scheduleRedraw);
  } else {
    const logged = new Map<string, number>();
    timers.push(setInterval(() => {
      const s = registry.snapshot();
      for (const p of s.peers) {
        if (p.pieceCount > 0 && logged.get(p.id) !== p.pieces) {
          logged.set(p.id, p.pieces);
          log({
            type: "progress",
            at: s.now,
            id: p.id,
            pieces: p.pieces,
            pieceCount: p.pieceCount,
          });
        }
      }
      for (const id of logged.keys()) if (!s.peers.some((p) => p.id === id)) logged.delete(id);
    }, PROGRESS_LOG_MS));
  }

  const { promise: stopped, resolve: stop } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", () => stop());
  if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", () => stop());
  await stopped;

  for (const t of timers) clearInterval(t);
  clearTimeout(redrawTimer);
  if (tty) writeAll(SHOW_CURSOR + "\n");
  // Answer the requests in flight, but do not hang on a client that keeps its connection open.
  const grace = new Promise<void>((resolve) => setTimeout(resolve, 2000));
  await Promise.race([server.shutdown(), grace]);
  Deno.exit(0);
});
