/**
 * A one-line progress bar redrawn in place on a terminal (stderr by default), at most every
 * 100 ms. When the output is not a terminal it draws nothing, so logs and pipes stay clean and
 * the caller prints one plain line at the end instead.
 *
 * @example
 * ```ts
 * import { ProgressBar } from "./progress_bar.ts";
 * const bar = new ProgressBar(500 * 2 ** 20, { label: "ubuntu-teste.iso" });
 * bar.update(250 * 2 ** 20); // ubuntu-teste.iso [=========>         ]  50% 250.0 MiB/500.0 MiB ...
 * bar.finish(); // erases the bar; print the summary next
 * ```
 * @module
 */

import { formatBytes } from "./cli.ts";

/** Where the bar is drawn: `Deno.stderr` or anything shaped like it. */
export interface ProgressSink {
  /** Writes bytes synchronously. */
  writeSync(p: Uint8Array): number;
  /** True when the sink is a terminal; the bar draws only then. */
  isTerminal(): boolean;
}

/** Options for {@linkcode ProgressBar}. */
export interface ProgressBarOptions {
  /** Text before the bar, such as the file name. */
  label?: string;
  /** Where to draw (default `Deno.stderr`). */
  sink?: ProgressSink;
  /** Line width (default: the terminal's width, or 80). */
  columns?: number;
  /** Fewest milliseconds between redraws (default 100). */
  intervalMs?: number;
  /** Clock in milliseconds (default `performance.now`). */
  now?: () => number;
}

/** What one frame of the bar shows; see {@linkcode renderProgress}. */
export interface ProgressFrame {
  /** Text before the bar. */
  label?: string;
  /** Bytes done. */
  done: number;
  /** Bytes in all. */
  total: number;
  /** Seconds since the start. */
  seconds: number;
  /** Line width to fit in. */
  columns: number;
}

/**
 * Renders one frame as a line no wider than `columns`:
 * `label [=====>    ]  45% 225.0 MiB/500.0 MiB 1210 MB/s ETA 1s`. The bar shrinks, then goes, on
 * narrow lines.
 */
export function renderProgress(frame: ProgressFrame): string {
  const { done, total, seconds, columns } = frame;
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  const rate = seconds > 0 ? done / seconds : 0;
  const eta = rate > 0 && done < total ? ` ETA ${formatDuration((total - done) / rate)}` : "";
  const stats = `${percent} ${formatBytes(done)}/${formatBytes(total)} ${
    formatRate(done, seconds)
  }${eta}`;
  const label = frame.label ? `${frame.label} ` : "";
  const max = Math.max(0, columns - 1);
  // The bar's width depends on the line width only, not on the numbers, so it does not jitter.
  const width = Math.min(40, max - label.length - 3 - STATS_WIDTH); // 2 brackets and a space
  if (width < 10) return (label + stats).slice(0, max);
  const filled = Math.floor(fraction * width);
  const bar = filled >= width
    ? "=".repeat(width)
    : "=".repeat(filled) + ">" + " ".repeat(width - filled - 1);
  return `${label}[${bar}] ${stats}`.slice(0, max);
}

/** Room kept for the numbers, enough for ` 45% 225.0 MiB/500.0 MiB 1210 MB/s ETA 9s`. */
const STATS_WIDTH = 42;

/** Throughput in decimal megabytes per second, as disks are rated: `1210 MB/s`. */
export function formatRate(bytes: number, seconds: number): string {
  if (!(seconds > 0)) return "- MB/s";
  const mbps = bytes / seconds / 1e6;
  return `${mbps >= 100 ? mbps.toFixed(0) : mbps.toFixed(1)} MB/s`;
}

/** A short duration: `42s`, `3m05s`, `1h02m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

const encoder = new TextEncoder();

/** A progress bar for a task of `total` bytes; see the module doc. */
export class ProgressBar {
  /** True when the sink is a terminal, so the bar is drawn. */
  readonly active: boolean;
  readonly #total: number;
  readonly #sink: ProgressSink;
  readonly #label?: string;
  readonly #columns: number;
  readonly #interval: number;
  readonly #now: () => number;
  readonly #start: number;
  #lastDraw = -Infinity;
  #drawn = false;

  /** Starts the clock for a task of `total` bytes. */
  constructor(total: number, options: ProgressBarOptions = {}) {
    this.#total = total;
    this.#sink = options.sink ?? Deno.stderr;
    this.#label = options.label;
    this.#columns = options.columns ?? terminalColumns();
    this.#interval = options.intervalMs ?? 100;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    this.active = this.#sink.isTerminal();
  }

  /** Seconds since the bar was made. */
  get seconds(): number {
    return (this.#now() - this.#start) / 1000;
  }

  /** Records progress; redraws if the interval has passed or the task is complete. */
  update(done: number): void {
    if (!this.active) return;
    const now = this.#now();
    if (now - this.#lastDraw < this.#interval && done < this.#total) return;
    this.#lastDraw = now;
    const line = renderProgress({
      label: this.#label,
      done,
      total: this.#total,
      seconds: (now - this.#start) / 1000,
      columns: this.#columns,
    });
    this.#write(`\r${line}\x1b[K`);
    this.#drawn = true;
  }

  /** Replaces the bar with `text` (say, "flushing to disk…") until the next update, on a terminal. */
  note(text: string): void {
    if (!this.active) return;
    this.#write(`\r${text.slice(0, Math.max(0, this.#columns - 1))}\x1b[K`);
    this.#drawn = true;
  }

  /** Erases the bar, leaving the cursor at the start of an empty line. */
  finish(): void {
    if (!this.#drawn) return;
    this.#write("\r\x1b[K");
    this.#drawn = false;
  }

  #write(text: string): void {
    const bytes = encoder.encode(text);
    let off = 0;
    while (off < bytes.length) off += this.#sink.writeSync(bytes.subarray(off));
  }
}

function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}
