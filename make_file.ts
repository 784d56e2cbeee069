/**
 * `make_file`: writes the swarm's test file, pseudo-random bytes reproducible from a seed, at
 * disk speed and with a progress bar on a terminal. See {@linkcode USAGE} for the options and
 * `lib/test_file.ts` for the content.
 *
 * @example
 * ```sh
 * deno run --allow-read --allow-write make_file.ts                       # 500 MiB ubuntu-teste.iso
 * deno run --allow-read --allow-write make_file.ts --size 64MiB --out small.iso --seed 7
 * ```
 * @module
 */

import {
  FatalError,
  formatBytes,
  main,
  parseOptions,
  parseSize,
  systemReason,
  UsageError,
} from "./lib/cli.ts";
import { formatRate, ProgressBar } from "./lib/progress_bar.ts";
import { DEFAULT_SEED, writeTestFile } from "./lib/test_file.ts";
import { hashFile, MAX_PIECE_LENGTH, toTorrent } from "./lib/metainfo.ts";

/** The command's help text. */
export const USAGE = `usage: make_file [--size 500MiB] [--out ubuntu-teste.iso] [--seed N] [--force]
                 [--announce URL] [--piece-length 1MiB] [--no-torrent]

Writes SIZE bytes of pseudo-random data, reproducible from the seed, to OUT. The data goes to
OUT.part first and is renamed to OUT only when complete, so an interrupted run never leaves a
short OUT behind. Beside it goes OUT.torrent, a standard BEP 3 .torrent for any BitTorrent
client, whose info-hash is the one our peers use.

  --size SIZE   bytes to write: 3MiB, 500MiB, 1GiB (powers of 1024), 64MB (powers of 1000)
                or a plain byte count (default 500MiB)
  --out PATH    the file to write (default ubuntu-teste.iso)
  --seed N      an integer from 0 to 2^64-1; the same seed and size always give the same
                bytes (default ${DEFAULT_SEED})
  --force       rewrite OUT even if it already exists
  --announce URL  the tracker written into OUT.torrent
                (default http://localhost:8000/announce)
  --piece-length SIZE  piece size of OUT.torrent (default 1MiB)
  --no-torrent  do not write OUT.torrent
  -h, --help    show this help

If OUT already exists with exactly SIZE bytes, it is kept as it is and make_file exits 0, so
scripts can call it every time (its contents are not checked: use --force to regenerate). If
OUT exists with another size, make_file refuses unless --force is given.

Exit status: 0 done or already there, 1 failure (such as a full disk), 2 bad arguments,
130 interrupted.`;

const MAX_SEED = (1n << 64n) - 1n;

/** Parses `--seed`: a decimal integer from 0 to 2^64 − 1; throws {@linkcode UsageError}. */
export function parseSeed(text: string | undefined): bigint {
  if (text === undefined || !/^\d{1,20}$/.test(text) || BigInt(text) > MAX_SEED) {
    throw new UsageError("--seed must be an integer from 0 to 18446744073709551615");
  }
  return BigInt(text);
}

async function run(args: string[]): Promise<void> {
  const { values } = parseOptions({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      size: { type: "string", default: "500MiB" },
      out: { type: "string", default: "ubuntu-teste.iso" },
      seed: { type: "string", default: String(DEFAULT_SEED) },
      force: { type: "boolean", default: false },
      announce: { type: "string", default: "http://localhost:8000/announce" },
      "piece-length": { type: "string", default: "1MiB" },
      "no-torrent": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const size = parseSize(values.size, "--size");
  const seed = parseSeed(values.seed);
  const out = values.out;
  if (out === "") throw new UsageError("--out must not be empty");
  const pieceLength = parseSize(values["piece-length"], "--piece-length");
  if (pieceLength < 16384 || pieceLength > MAX_PIECE_LENGTH) {
    throw new UsageError("--piece-length must be between 16KiB and 16MiB");
  }
  try {
    new URL(values.announce);
  } catch {
    throw new UsageError("--announce must be a URL such as http://localhost:8000/announce");
  }
  const torrent = values["no-torrent"]
    ? undefined
    : { announce: values.announce, pieceLength, path: `${out}.torrent` };

  const existing = await statOrUndefined(out);
  if (existing) {
    if (!existing.isFile) throw new FatalError(`${out} exists and is not a regular file`);
    if (!values.force) {
      if (existing.size === size) {
        console.log(
          `${out} already exists with ${describe(size)}; kept it (use --force to rewrite it)`,
        );
        if (torrent && !(await statOrUndefined(torrent.path))) await writeTorrentFor(out, torrent);
        return;
      }
      throw new FatalError(
        `${out} already exists with ${describe(existing.size)}, not ${describe(size)}; ` +
          `use --force to replace it`,
      );
    }
  }

  const bar = new ProgressBar(size, { label: out.split(/[\\/]/).pop() });
  const abort = new AbortController();
  const interrupted = new FatalError("interrupted");
  const onSigint = () => abort.abort(interrupted);
  const listening = addSigint(onSigint);
  try {
    const result = await writeTestFile(out, size, {
      seed,
      signal: abort.signal,
      onProgress: (done) => bar.update(done),
      onFlush: () => bar.note(`${out}: flushing ${formatBytes(size)} to disk…`),
    });
    bar.finish();
    console.log(
      `wrote ${describe(result.size)} to ${out} in ${result.seconds.toFixed(2)} s ` +
        `(${formatRate(result.size, result.seconds)}), seed ${seed}`,
    );
    if (torrent) await writeTorrentFor(out, torrent);
  } catch (e) {
    bar.finish();
    if (e === interrupted) {
      console.error(`interrupted; removed ${out}.part`);
      Deno.exit(130);
    }
    throw e;
  } finally {
    if (listening) Deno.removeSignalListener("SIGINT", onSigint);
  }
}

/** Hashes `file` and writes its .torrent. */
async function writeTorrentFor(
  file: string,
  t: { announce: string; pieceLength: number; path: string },
): Promise<void> {
  const meta = await hashFile(file, { pieceLength: t.pieceLength });
  try {
    await Deno.writeFile(t.path, toTorrent(meta, t.announce));
  } catch (e) {
    throw new FatalError(`cannot write ${t.path}: ${systemReason(e)}`, { cause: e });
  }
  console.log(`wrote ${t.path} (${meta.pieceCount} pieces, info-hash ${meta.infoHashHex})`);
}

function describe(n: number): string {
  return n < 1024 ? `${n} bytes` : `${formatBytes(n)} (${n} bytes)`;
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof Deno.errors.NotCapable) throw e;
    throw new FatalError(`cannot write ${path}: ${systemReason(e)}`, { cause: e });
  }
}

function addSigint(handler: () => void): boolean {
  try {
    Deno.addSignalListener("SIGINT", handler);
    return true;
  } catch {
    return false; // a platform without SIGINT listeners: Ctrl-C just leaves OUT.part behind
  }
}

if (import.meta.main) await main(USAGE, () => run(Deno.args));
