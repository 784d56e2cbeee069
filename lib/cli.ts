/**
 * Shared command-line plumbing for the entrypoints: a typed usage error that exits 2, a fatal
 * error that prints one sentence and exits 1, option parsing, and parsers for ports, booleans and
 * byte sizes.
 *
 * @example
 * ```ts
 * import { main, parsePort, UsageError } from "./cli.ts";
 * await main("usage: tracker [--port 8000]", async () => {
 *   const port = parsePort("8000", "--port");
 * });
 * ```
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** Wrong or missing command-line arguments: the entrypoint prints its usage and exits 2. */
export class UsageError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/**
 * A failure the user can act on (port in use, file missing, tracker unreachable): printed as
 * one sentence, exit code 1, no stack trace.
 */
export class FatalError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FatalError";
  }
}

/**
 * Runs an entrypoint's body, turning {@linkcode UsageError} into the usage line and exit 2, and
 * any other error into one line on stderr and exit 1.
 */
export async function main(usage: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}\n${usage}`);
      Deno.exit(2);
    }
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`error: ${msg}`);
    if (!(e instanceof FatalError) && debugEnabled()) console.error(e);
    Deno.exit(1);
  }
}

/**
 * True when `SWARM_DEBUG=1`. Entrypoints run without `--allow-env`, where reading the variable
 * would throw (or prompt), so it is read only when env access is already granted.
 */
function debugEnabled(): boolean {
  const q = Deno.permissions.querySync({ name: "env", variable: "SWARM_DEBUG" });
  return q.state === "granted" && Deno.env.get("SWARM_DEBUG") === "1";
}

/**
 * `parseArgs` for our command lines: a wrong option or value becomes a {@linkcode UsageError}
 * with {@linkcode argError}'s short sentence, which {@linkcode main} prints with the usage.
 *
 * @example
 * ```ts
 * import { parseOptions } from "./cli.ts";
 * const { values } = parseOptions({
 *   args: ["--size", "4MiB"],
 *   options: { size: { type: "string", default: "64MiB" } },
 * });
 * ```
 */
export function parseOptions<T extends ParseArgsConfig>(
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new UsageError(argError(e), { cause: e });
  }
}

/** `parseArgs`'s messages are long and Node-flavoured; say the same in one short clause. */
export function argError(e: unknown): string {
  const code = (e as { code?: string }).code;
  const msg = e instanceof Error ? e.message : String(e);
  const name = /'([^']+)'/.exec(msg)?.[1]?.split(" ")[0];
  switch (code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option ${name ?? msg}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return `option ${name ?? msg} needs a value`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${name ?? msg}`;
    default:
      return msg;
  }
}

/** Parses a TCP port (1–65535, or 0 when `allowZero`); throws {@linkcode UsageError}. */
export function parsePort(text: string | undefined, what: string, allowZero = false): number {
  const n = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || n > 65535 || (n === 0 && !allowZero)) {
    throw new UsageError(`${what} must be a port number from ${allowZero ? 0 : 1} to 65535`);
  }
  return n;
}

/** Parses `true`/`false` (also yes/no, 1/0); throws {@linkcode UsageError}. */
export function parseBool(text: string | undefined, what: string): boolean {
  const t = text?.toLowerCase();
  if (t === "true" || t === "yes" || t === "1") return true;
  if (t === "false" || t === "no" || t === "0") return false;
  throw new UsageError(`${what} must be true or false`);
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/**
 * Parses a byte size such as `500MiB`, `64MB`, `1GiB`, `3.5m` or `1048576` (KiB/MiB/GiB and
 * bare K/M/G are powers of 1024; kB/MB/GB powers of 1000). Throws {@linkcode UsageError}.
 */
export function parseSize(text: string | undefined, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text ?? "");
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(`${what} must be a size such as 64MiB, 500MiB or 1GiB`);
  }
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${what} must be at least 1 byte`);
  return n;
}

/** Parses a rate such as `4MiB/s`, `4MiB` or `500kB/s` into bytes per second. */
export function parseRate(text: string | undefined, what: string): number {
  const t = (text ?? "").replace(/\/s$/i, "").replace(/ps$/i, "");
  try {
    return parseSize(t, what);
  } catch {
    throw new UsageError(`${what} must be a rate such as 4MiB/s or 500kB/s`);
  }
}

/** Parses a whole number from `min` to `max`; throws {@linkcode UsageError}. */
export function parseCount(
  text: string | undefined,
  what: string,
  min: number,
  max: number,
): number {
  const n = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || n < min || n > max) {
    throw new UsageError(`${what} must be a whole number from ${min} to ${max}`);
  }
  return n;
}

/** Parses a positive number of seconds (fractions allowed, at most a day). */
export function parseSeconds(text: string | undefined, what: string): number {
  const n = Number(text);
  if (text === undefined || !/^\d+(\.\d+)?$/.test(text) || !(n > 0) || n > 86400) {
    throw new UsageError(`${what} must be a number of seconds above 0`);
  }
  return n;
}

/**
 * A short reason for a system error, in the operating system's words without the "(os error
 * N)" suffix or the path Deno appends: "No space left on device", "Permission denied".
 */
export function systemReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/\s*\(os error \d+\)[\s\S]*$/, "").replace(
    /:\s*(open|write|read|rename|remove) '[\s\S]*$/,
    "",
  ) ||
    "unknown error";
}

/** Formats a byte count for people: `500.0 MiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}
