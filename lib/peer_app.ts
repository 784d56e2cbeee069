/**
 * A whole peer as `peer.ts` runs it: opens the listening port, hashes the file (seeder) or fetches
 * the metainfo and opens the download file (leecher), registers with the tracker, keeps reporting
 * progress and learning peers, prints progress, and shuts down cleanly on a signal.
 *
 * @example
 * ```ts
 * import { runPeer } from "./peer_app.ts";
 * await runPeer({ host: "localhost", port: 9001, seeder: false, tracker: "http://localhost:8000/",
 *   file: "ubuntu-teste.iso", dir: "." });
 * ```
 * @module
 */

import { Backoff } from "./backoff.ts";
import { Bitfield } from "./bitfield.ts";
import { FatalError, formatBytes, systemReason } from "./cli.ts";
import { Engine, type EngineTuning } from "./engine.ts";
import { fromHex, toHex } from "./hash.ts";
import {
  DEFAULT_PIECE_LENGTH,
  fromInfo,
  hashFile,
  type Metainfo,
  parseTorrent,
  toTorrent,
} from "./metainfo.ts";
import { PieceStore, PieceStoreError } from "./piece_store.ts";
import {
  FaultCode,
  type PeerInfo,
  type RegisterParams,
  type RegisterResult,
  type Role,
} from "./tracker_api.ts";
import { TrackerClient, TrackerFault, TrackerUnreachable } from "./tracker_client.ts";
import { clientName, makePeerId } from "./wire.ts";

/** How a peer was asked to run. */
export interface PeerConfig {
  /** Host name to listen on and to register as. */
  host: string;
  /** Port to listen on. */
  port: number;
  /** True: serve the complete file; false: download it. */
  seeder: boolean;
  /** The tracker's XML-RPC URL. */
  tracker: string;
  /** The seeder's file name (in `dir`). */
  file: string;
  /** Folder for the seed file and downloads. */
  dir: string;
  /** Piece length the seeder hashes with. */
  pieceLength?: number;
  /** Wait for a line on standard input before joining the swarm (`--hold`). */
  hold?: boolean;
  /** A .torrent to take the metainfo from (a leecher), instead of asking the tracker. */
  torrent?: string;
  /** Print only the important lines. */
  quiet?: boolean;
  /** Engine timing and limits. */
  tuning?: Partial<EngineTuning>;
  /** Upload cap, bytes/s. */
  upRate?: number;
  /** Download cap, bytes/s. */
  downRate?: number;
  /** Upload nothing (client-server mode). */
  noUpload?: boolean;
  /** Where lines go (default console.log). */
  log?: (line: string) => void;
}

/** The download file's name: `HOST_PORT_NAME`, e.g. `localhost_9001_ubuntu-teste.iso`. */
export function downloadName(host: string, port: number, name: string): string {
  return `${host.replace(/[^A-Za-z0-9.-]/g, "_")}_${port}_${name}`;
}

/** Runs a peer until it gets SIGINT or SIGTERM. Throws {@linkcode FatalError} on set-up failures. */
export async function runPeer(cfg: PeerConfig): Promise<void> {
  const log = cfg.log ?? ((line: string) => console.log(line));
  const id = `${cfg.host}:${cfg.port}`;
  const listener = listen(cfg.host, cfg.port);
  const client = new TrackerClient(cfg.tracker);
  const peerId = makePeerId();
  const role: Role = cfg.seeder ? "seeder" : "leecher";
  let meta: Metainfo;
  let store: PieceStore;
  let have: Bitfield;
  let session: RegisterResult | undefined;

  try {
    if (cfg.seeder) {
      const path = `${cfg.dir}/${cfg.file}`;
      await statSeedFile(path);
      meta = await hashWithProgress(path, cfg, log);
      await writeTorrent(`${path}.torrent`, meta, cfg.tracker, log);
      session = await registerOrExplain(client, cfg, peerId, role);
      await publish(client, session.token, meta, cfg.tracker);
      store = await PieceStore.openForSeeding(path, meta);
      have = Bitfield.full(meta.pieceCount);
      log(`Seeding ${meta.name} (${formatBytes(meta.length)}, ${meta.pieceCount} pieces) as ${id}`);
    } else {
      session = await registerOrExplain(client, cfg, peerId, role);
      if (cfg.torrent) {
        // Started from a .torrent: publish it, so clients that announce over HTTP can join too.
        meta = await readTorrent(cfg.torrent);
        await publish(client, session.token, meta, cfg.tracker);
      } else {
        meta = await waitForMetainfo(client, log);
      }
      const path = `${cfg.dir}/${downloadName(cfg.host, cfg.port, meta.name)}`;
      store = await PieceStore.create(path, meta);
      have = store.existed ? store.scan() : new Bitfield(meta.pieceCount);
      if (have.count > 0) log(`Resumed with ${have.count}/${meta.pieceCount} pieces from ${path}`);
      log(`Downloading ${meta.name} (${meta.pieceCount} pieces) into ${path}`);
    }
  } catch (e) {
    listener.close();
    // Registered but cannot go on: leave now, so nobody dials a dead port until we expire.
    if (session) await client.leave(session.token).catch(() => {});
    if (e instanceof PieceStoreError) throw new FatalError(e.message, { cause: e });
    throw e;
  }

  const fatal = (e: Error) => {
    console.error(`error: ${e.message}`);
    Deno.exit(1);
  };
  const fromTracker = new Map<string, string>();
  let firstPieceAt: number | undefined;
  let completedAt: number | undefined;
  const pieceLog = new Map<string, number[]>();
  const engine = new Engine({
    meta,
    store,
    have,
    peerId,
    listener,
    log,
    tuning: cfg.tuning,
    upRate: cfg.upRate,
    downRate: cfg.downRate,
    noUpload: cfg.noUpload,
    onFatal: fatal,
    onPiece: (index, from) => {
      firstPieceAt ??= Date.now();
      for (const f of from) {
        const list = pieceLog.get(f) ?? [];
        list.push(index);
        pieceLog.set(f, list);
      }
    },
  });
  // A held leecher asks for the peer list before the gate opens: when many peers are released at
  // once, the tracker round trips they would all make first cost a few hundred milliseconds
  // before anyone dials (at 32 leechers). Peers that register later are found by the first
  // report, as usual.
  let early: PeerInfo[] = [];
  if (cfg.hold) {
    if (session && !have.complete) early = await client.listPeers(session.token).catch(() => []);
    // Set up and registered: wait for the word to go, so a script can release many peers at once.
    log("READY (waiting for a line on standard input)");
    await waitForLine(Deno.stdin.readable);
  }
  const started = Date.now();
  engine.start();

  const myIdHex = toHex(peerId);
  const params = (): RegisterParams => ({
    host: cfg.host,
    port: cfg.port,
    peerId: myIdHex,
    role: engine.have.complete ? "seeder" : "leecher",
  });
  const tracker = new TrackerLoop(client, params, session, log, async (token) => {
    if (cfg.seeder) await publish(client, token, meta, cfg.tracker);
  });
  const onPeers = (peers: PeerInfo[]) => {
    for (const p of peers) {
      fromTracker.set(p.peerId, p.id);
      engine.namePeer(p.peerId, p.id);
      if (engine.have.complete) continue;
      // One side of each pair of our leechers dials, so two of them do not open two
      // connections. Other clients learn peers only from their own announces (libtorrent at
      // most every 5 minutes), so we dial them whatever their peer id.
      const ours = clientName(fromHex(p.peerId)) === "swarm";
      if (p.role === "seeder" || p.pieces === meta.pieceCount || !ours || myIdHex < p.peerId) {
        engine.connect(p.address, p.port, p.id, p.peerId);
      }
    }
  };
  const report = () =>
    tracker.report(engine.have.toBytes(), engine.uploaded, engine.downloaded, onPeers);
  onPeers(early);
  // One timer at a time: the first report, then the regular ones.
  let reportTimer: ReturnType<typeof setTimeout> | undefined;
  const reportEvery = () => (reportTimer = setInterval(report, tracker.intervalMs));
  if (early.length > 0) {
    // Released together with many others, each already knowing its peers: the first report can
    // wait a moment (0.5 to 1.5 s, spread out), so a crowd of tracker calls does not take the
    // CPU the first pieces need.
    reportTimer = setTimeout(() => {
      report();
      reportEvery();
    }, 500 + Math.random() * 1000);
  } else {
    await report();
    reportEvery();
  }

  let progressTimer: ReturnType<typeof setInterval> | undefined;
  if (!cfg.seeder && !have.complete) {
    const total = meta.pieceCount;
    const startCount = have.count;
    progressTimer = setInterval(() => {
      const { down, up } = engine.rates();
      const n = engine.have.count;
      log(
        `Progress ${id}: ${n}/${total} (${(100 * n / total).toFixed(1)}%)  ` +
          `down ${mbps(down)}  up ${mbps(up)}  ${engine.peerCount} peers, ` +
          `serving ${engine.serving().peers} (${engine.serving().queued} requests queued)`,
      );
      if (!cfg.quiet) {
        for (const [from, pieces] of pieceLog) {
          log(`  ${pieces.length} piece(s) from ${from}: ${summarise(pieces)}`);
        }
      }
      pieceLog.clear();
    }, 1000);
    engine.completed.then(async () => {
      completedAt = Date.now();
      clearInterval(progressTimer);
      const secs = (Date.now() - started) / 1000;
      const bytes = (engine.have.count - startCount) * meta.pieceLength;
      log(
        `DOWNLOAD COMPLETE! ${total}/${total} pieces in ${secs.toFixed(1)} s ` +
          `(${mbps(Math.min(bytes, meta.length) / secs)}); now seeding as ${id}`,
      );
      await report();
    });
  }

  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  // The first report's timeout or the interval after it: one id space, either call clears both.
  clearTimeout(reportTimer);
  clearInterval(progressTimer);
  log(`Leaving the swarm (${engine.have.count}/${meta.pieceCount} pieces kept on disk)`);
  engine.stop();
  store.close();
  for (const s of engine.peerStats()) {
    if (s.downloaded + s.uploaded === 0) continue;
    log(
      `  ${s.label}: received ${formatBytes(s.downloaded)}, sent ${formatBytes(s.uploaded)}`,
    );
  }
  // One machine-readable line for scripts (the experiment's upload utilisation).
  const stoppedAt = Date.now();
  log(`STATS ${
    JSON.stringify({
      uploaded: engine.uploaded,
      downloaded: engine.downloaded,
      runMs: stoppedAt - started,
      firstPieceMs: firstPieceAt === undefined ? null : firstPieceAt - started,
      completeMs: completedAt === undefined ? null : completedAt - started,
      interestedMs: Math.round(engine.interestedMs),
    })
  }`);
  await tracker.leave();
}

/** The BEP 3 announce URL of the tracker whose XML-RPC endpoint is `trackerUrl`. */
export function announceUrl(trackerUrl: string): string {
  return new URL("/announce", trackerUrl).href;
}

/**
 * Writes a standard .torrent beside the seed file, so any BitTorrent client can join the swarm.
 * Not being able to is worth a line, not the end of seeding.
 */
async function writeTorrent(
  path: string,
  meta: Metainfo,
  trackerUrl: string,
  log: (line: string) => void,
): Promise<void> {
  try {
    await Deno.writeFile(path, toTorrent(meta, announceUrl(trackerUrl)));
    log(`Wrote ${path} (info-hash ${meta.infoHashHex}) for other BitTorrent clients`);
  } catch (e) {
    log(`Could not write ${path}: ${systemReason(e)}`);
  }
}

/** Resolves at the first newline (or end) of `stream`, then lets go of it. */
async function waitForLine(stream: ReadableStream<Uint8Array>): Promise<void> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done || value.includes(0x0a)) return;
    }
  } finally {
    reader.releaseLock();
  }
}

function listen(host: string, port: number): Deno.Listener {
  try {
    return Deno.listen({ hostname: host, port });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new FatalError(`port ${port} is already in use on ${host}; choose another port`);
    }
    throw new FatalError(`cannot listen on ${host}:${port}: ${systemReason(e)}`, { cause: e });
  }
}

/** Reads a .torrent's metainfo; throws {@linkcode FatalError} with the reason. */
export async function readTorrent(path: string): Promise<Metainfo> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new FatalError(`cannot read ${path}: ${systemReason(e)}`, { cause: e });
  }
  try {
    return (await parseTorrent(bytes)).meta;
  } catch (e) {
    throw new FatalError(`${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

async function statSeedFile(path: string): Promise<void> {
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) throw new FatalError(`seed file ${path} is not a file`);
  } catch (e) {
    if (e instanceof FatalError) throw e;
    if (e instanceof Deno.errors.NotFound) {
      throw new FatalError(
        `seed file ${path} not found; create it with \`deno task make-file\` or pass --file`,
      );
    }
    throw new FatalError(`cannot read seed file ${path}: ${systemReason(e)}`, { cause: e });
  }
}

async function hashWithProgress(
  path: string,
  cfg: PeerConfig,
  log: (line: string) => void,
): Promise<Metainfo> {
  const t0 = Date.now();
  let lastLog = t0;
  const meta = await hashFile(path, {
    pieceLength: cfg.pieceLength ?? DEFAULT_PIECE_LENGTH,
    onProgress: (done, total) => {
      if (Date.now() - lastLog > 1000) {
        lastLog = Date.now();
        log(`Hashing ${path}: ${done}/${total} pieces`);
      }
    },
  });
  log(`Hashed ${path}: ${meta.pieceCount} pieces in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return meta;
}

async function registerOrExplain(
  client: TrackerClient,
  cfg: PeerConfig,
  peerId: Uint8Array,
  role: Role,
): Promise<RegisterResult> {
  try {
    return await client.register({ host: cfg.host, port: cfg.port, peerId: toHex(peerId), role });
  } catch (e) {
    if (e instanceof TrackerUnreachable) {
      throw new FatalError(
        `cannot reach the tracker at ${cfg.tracker}; start it with \`deno task tracker\` or pass --tracker`,
        { cause: e },
      );
    }
    if (e instanceof TrackerFault) throw new FatalError(`the tracker refused us: ${e.message}`);
    throw e;
  }
}

async function publish(
  client: TrackerClient,
  token: string,
  meta: Metainfo,
  url: string,
): Promise<void> {
  try {
    await client.publish(token, meta.info);
  } catch (e) {
    if (e instanceof TrackerFault && e.code === FaultCode.conflict) {
      throw new FatalError(`the tracker at ${url} already serves a different file: ${e.message}`);
    }
    throw e;
  }
}

async function waitForMetainfo(client: TrackerClient, log: (l: string) => void): Promise<Metainfo> {
  const backoff = new Backoff({ initialMs: 250, maxMs: 5000 });
  let said = false;
  for (;;) {
    try {
      const res = await client.getMetainfo();
      return await fromInfo(res.info);
    } catch (e) {
      const waiting = e instanceof TrackerFault && e.code === FaultCode.notPublished;
      if (!waiting && !(e instanceof TrackerUnreachable)) throw e;
      if (!said) {
        log(
          waiting ? "Waiting for a seeder to publish the file…" : "Tracker unreachable; retrying…",
        );
        said = true;
      }
      await new Promise((r) => setTimeout(r, backoff.next()));
    }
  }
}

/**
 * Keeps the peer known to the tracker: progress reports and peer lists each interval, a fresh
 * registration when the tracker forgot us (it restarted), back-off while it is unreachable.
 */
class TrackerLoop {
  #token: string;
  #interval: number;
  #backoff = new Backoff({ initialMs: 1000, maxMs: 30_000 });
  #retryAt = 0;
  #busy = false;
  #down = false;

  constructor(
    readonly client: TrackerClient,
    readonly registerParams: () => RegisterParams,
    session: RegisterResult,
    readonly log: (line: string) => void,
    readonly onRegistered: (token: string) => Promise<void>,
  ) {
    this.#token = session.token;
    this.#interval = session.interval;
  }

  get intervalMs(): number {
    return Math.max(250, this.#interval * 1000);
  }

  async report(
    bitfield: Uint8Array,
    uploaded: number,
    downloaded: number,
    onPeers: (peers: PeerInfo[]) => void,
  ): Promise<void> {
    if (this.#busy || Date.now() < this.#retryAt) return;
    this.#busy = true;
    try {
      try {
        await this.client.reportProgress(this.#token, bitfield, uploaded, downloaded);
      } catch (e) {
        if (!(e instanceof TrackerFault && e.code === FaultCode.unknownToken)) throw e;
        // The tracker restarted or expired us: join again and republish.
        const s = await this.client.register(this.registerParams());
        this.#token = s.token;
        await this.onRegistered(s.token);
        await this.client.reportProgress(this.#token, bitfield, uploaded, downloaded);
        this.log("Registered with the tracker again");
      }
      onPeers(await this.client.listPeers(this.#token));
      if (this.#down) this.log("Tracker is back");
      this.#down = false;
      this.#backoff.reset();
    } catch (e) {
      const delay = this.#backoff.next();
      this.#retryAt = Date.now() + delay;
      if (!this.#down || this.#backoff.attempts % 5 === 0) {
        const why = e instanceof Error ? e.message : String(e);
        this.log(
          `Tracker unavailable (${why}); still trading with known peers, retry in ${
            Math.round(delay / 1000)
          } s`,
        );
      }
      this.#down = true;
    } finally {
      this.#busy = false;
    }
  }

  async leave(): Promise<void> {
    try {
      await this.client.leave(this.#token);
    } catch {
      // The tracker will expire us anyway.
    }
  }
}

function mbps(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

function summarise(pieces: number[]): string {
  const shown = pieces.slice(0, 8).join(", ");
  return pieces.length > 8 ? `${shown}, …` : shown;
}
