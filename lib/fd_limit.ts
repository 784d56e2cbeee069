/**
 * Does the open-files limit (`ulimit -n`) leave room for the connections a peer or a whole swarm
 * will open? Every TCP connection is a file descriptor; a peer that runs out of them cannot
 * accept, dial or even write its file, so it is better to know at the start.
 *
 * Deno cannot raise the limit (no `setrlimit` without FFI) and will not read `/proc/self/limits`
 * without `--allow-all`, so the room is measured instead: {@linkcode freeDescriptors} opens
 * `/dev/null` until it has as many as asked for or the system says "too many open files", then
 * closes them all. That counts exactly what matters, the descriptors still free, and needs only
 * `--allow-read`. The decisions ({@linkcode fitPeers}, {@linkcode swarmFdProblem}) are pure.
 *
 * @example
 * ```ts
 * import { FD_RESERVE, fitPeers, freeDescriptors } from "./fd_limit.ts";
 * const fit = fitPeers(50, freeDescriptors(50 + FD_RESERVE));
 * if (fit.kind === "lowered") console.log(fit.message);
 * ```
 * @module
 */

/**
 * Descriptors a peer needs besides its handshaken connections: up to 16 connections still in
 * their handshake (the engine's quota), the listener, the file, a .torrent being written, the
 * tracker's HTTP connections, and what Deno opens along the way.
 */
export const FD_RESERVE = 32;

/**
 * Descriptors `swarm.ts` itself holds for each process it starts: its stdin, stdout and stderr
 * pipes, the process handle (a pidfd on Linux) and its log file.
 */
export const SWARM_FDS_PER_CHILD = 5;

/**
 * Descriptors `swarm.ts` needs besides those of its children (the test file and its copies, one
 * at a time). Measured under `ulimit -n 100` (79 free): 13 leechers ran, 14 did not; these
 * figures allow 12.
 */
export const SWARM_RESERVE = 8;

/**
 * How many more files this process can open, counted up to `upTo`: `upTo` means at least that
 * many. Undefined when it cannot tell: no `/dev/null` (Windows) or no permission to read it;
 * then there is nothing to check against and the caller goes on as asked.
 */
export function freeDescriptors(upTo: number): number | undefined {
  const opened: Deno.FsFile[] = [];
  try {
    // Synchronous on purpose: nothing else in this process opens a file while the table is full.
    while (opened.length < upTo) opened.push(Deno.openSync("/dev/null", { read: true }));
    return opened.length;
  } catch (e) {
    if ((e as { code?: string }).code === "EMFILE" || (e as { code?: string }).code === "ENFILE") {
      return opened.length;
    }
    return undefined;
  } finally {
    for (const f of opened) f.close();
  }
}

/** What a peer does about its open-files limit. */
export type PeerFit =
  /** The limit leaves room for every connection asked for. */
  | { kind: "fits" }
  /** Fewer connections fit: keep at most `maxPeers`; `message` says so in one line. */
  | { kind: "lowered"; maxPeers: number; message: string }
  /** Not even one connection fits: `message` is the one sentence to exit with. */
  | { kind: "cannot"; message: string };

/**
 * Whether `maxPeers` connections (plus {@linkcode FD_RESERVE}) fit in `free` descriptors, as
 * measured by {@linkcode freeDescriptors} with `upTo = maxPeers + reserve`; undefined (not
 * measurable) fits.
 */
export function fitPeers(
  maxPeers: number,
  free: number | undefined,
  reserve = FD_RESERVE,
): PeerFit {
  if (free === undefined || free >= maxPeers + reserve) return { kind: "fits" };
  const room = free - reserve;
  if (room < 1) {
    return {
      kind: "cannot",
      message: `the open-files limit leaves room for only ${free} more files, too few for a ` +
        `single peer connection (a peer needs at least ${
          reserve + 1
        }); raise it with \`ulimit -n\``,
    };
  }
  return {
    kind: "lowered",
    maxPeers: room,
    message: `the open-files limit leaves room for ${free} more files: keeping at most ${room} ` +
      `peer connections instead of ${maxPeers} (raise it with \`ulimit -n\`)`,
  };
}

/**
 * Descriptors `swarm.ts --leechers N` needs in its own process and in each peer (every peer may
 * connect to all N others, the seeder included, plus one for a late joiner).
 */
export function swarmFdNeeds(leechers: number): { runner: number; peer: number } {
  return {
    runner: SWARM_FDS_PER_CHILD * (leechers + 2) + SWARM_RESERVE,
    peer: leechers + 1 + FD_RESERVE,
  };
}

/**
 * Why `swarm.ts --leechers N` cannot run within `free` descriptors (children inherit the same
 * limit), in one sentence; undefined when it fits or `free` is unknown. Measure `free` with
 * {@linkcode freeDescriptors} and `upTo` the larger of {@linkcode swarmFdNeeds}.
 */
export function swarmFdProblem(leechers: number, free: number | undefined): string | undefined {
  if (free === undefined) return undefined;
  const { runner, peer } = swarmFdNeeds(leechers);
  const need = Math.max(runner, peer);
  if (free >= need) return undefined;
  const who = runner >= peer
    ? `about ${runner} open files to run ${leechers + 2} processes`
    : `about ${peer} open files in each peer`;
  return `--leechers ${leechers} needs ${who}, but the open-files limit leaves room for only ` +
    `${free}; use fewer leechers or raise the limit with \`ulimit -n\``;
}
