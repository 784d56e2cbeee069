/**
 * Starting the project's own entrypoints as child processes with the narrowest permissions each
 * needs, and reading their output line by line. Used by `deno task swarm`, the benchmark and the
 * tests, so all three run the real programs exactly as a user would.
 *
 * @example
 * ```ts
 * import { readLines, spawnEntry } from "./process.ts";
 * const child = spawnEntry("tracker", ["--port", "8000"], { stdout: "piped" });
 * readLines(child.stdout, (line) => console.log("tracker:", line));
 * ```
 * @module
 */

/** The project's entrypoints. */
export type Entry = "tracker" | "peer" | "make_file";

/** Permission flags each entrypoint runs with (also listed in the README). */
export const PERMISSIONS: Record<Entry, string[]> = {
  tracker: ["--allow-net"],
  peer: ["--allow-net", "--allow-read", "--allow-write"],
  make_file: ["--allow-read", "--allow-write"],
};

/** The file URL of an entrypoint's module. */
export function entryPath(entry: Entry): string {
  return new URL(`../${entry}.ts`, import.meta.url).pathname;
}

/** Options for {@linkcode spawnEntry}. */
export interface SpawnOptions {
  /** What to do with stdin (default "null"). */
  stdin?: "piped" | "null";
  /** What to do with stdout (default "piped"). */
  stdout?: "piped" | "inherit" | "null";
  /** What to do with stderr (default "piped"). */
  stderr?: "piped" | "inherit" | "null";
  /** Working directory. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
}

/** Starts `deno run <permissions> <entry>.ts ...args` with this Deno executable. */
export function spawnEntry(
  entry: Entry,
  args: string[],
  opts: SpawnOptions = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-prompt", ...PERMISSIONS[entry], entryPath(entry), ...args],
    stdin: opts.stdin ?? "null",
    stdout: opts.stdout ?? "piped",
    stderr: opts.stderr ?? "piped",
    cwd: opts.cwd,
    env: opts.env,
  }).spawn();
}

/**
 * Calls `onLine` for every line of `stream` (without its newline); resolves when it ends.
 * Partial lines are delivered at the end.
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      onLine(rest.slice(0, nl).replace(/\r$/, ""));
      rest = rest.slice(nl + 1);
    }
  }
  rest += decoder.decode();
  if (rest.length > 0) onLine(rest);
}

/** Resolves once `port` on `host` accepts TCP connections; rejects after `timeoutMs`. */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: host, port });
      c.close();
      return;
    } catch {
      if (Date.now() > deadline) {
        throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * A port that was free a moment ago on 127.0.0.1, taken below every OS's default ephemeral range
 * (Linux starts at 32768, macOS and Windows at 49152). A port the OS hands out (`port: 0`) comes
 * from that range, where any outgoing connection may take it as its local port before the peer
 * started on it binds (seen as "port … is already in use" in busy swarm tests).
 */
export function freePort(): number {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    }
  }
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
