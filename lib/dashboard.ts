/**
 * The tracker's dashboard and log lines, as pure functions of a registry
 * {@linkcode Snapshot}: a bordered box for terminals, redrawn in place, and one plain line per
 * event when output is not a terminal.
 *
 * Borders line up because every cell is measured in terminal columns
 * ({@linkcode displayWidth}: emoji and East Asian wide characters take two), and every string
 * that came from the network (peer ids, the file name) has its control characters replaced
 * before it reaches the terminal.
 *
 * @example
 * ```ts
 * import { renderDashboard, screenFrame } from "./dashboard.ts";
 * import { Registry } from "./registry.ts";
 * const registry = new Registry();
 * const box = renderDashboard(registry.snapshot(), { width: 70, color: false });
 * await Deno.stdout.write(new TextEncoder().encode(screenFrame(box.split("\n"))));
 * ```
 * @module
 */

import { formatBytes } from "./cli.ts";
import type { PeerRow, RegistryEvent, Snapshot } from "./registry.ts";

/** Hides the terminal cursor while the dashboard runs. */
export const HIDE_CURSOR = "\x1b[?25l";
/** Shows the cursor again (on exit). */
export const SHOW_CURSOR = "\x1b[?25h";
/** Narrowest box drawn; narrower terminals get a box this wide anyway. */
export const MIN_WIDTH = 40;

/** Options for {@linkcode renderDashboard}. */
export interface DashboardOptions {
  /** Total width of the box in terminal columns (at least {@linkcode MIN_WIDTH}). */
  width: number;
  /** Most lines to draw; extra peers are summarised in one line (default: no limit). */
  height?: number;
  /** Use ANSI colours. */
  color: boolean;
}

/** A progress line for the plain log (the tracker emits these every few seconds). */
export interface ProgressEvent {
  /** Discriminant. */
  type: "progress";
  /** Clock time in ms. */
  at: number;
  /** The peer's `host:port`. */
  id: string;
  /** Pieces it holds. */
  pieces: number;
  /** Pieces in the file. */
  pieceCount: number;
}

/** Anything {@linkcode renderLogLine} can print. */
export type LogEvent = RegistryEvent | ProgressEvent;

// deno-lint-ignore no-control-regex
const ANSI_RE = /\x1b\[[0-9;?]*[A-Za-z]/g;
// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\x00-\x1f\x7f-\x9f]/g;
const ZERO_WIDTH_RE = /^[\p{Mn}\p{Me}\p{Cf}]$/u;
const EMOJI_PRESENTATION_RE = /^\p{Emoji_Presentation}$/u;
const EMOJI_RE = /^\p{Extended_Pictographic}$/u;

/** East Asian Wide and Fullwidth ranges that are not emoji (those are caught separately). */
const WIDE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1b000, 0x1b2ff],
  [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

function isWide(cp: number): boolean {
  for (const [lo, hi] of WIDE_RANGES) if (cp >= lo && cp <= hi) return true;
  return false;
}

/**
 * How many terminal columns `text` takes: ANSI colour codes and combining or format characters
 * take none, emoji (default emoji presentation, or text emoji followed by VS16) and East Asian
 * wide characters take two, emoji joined by ZWJ or paired into a flag count once.
 */
export function displayWidth(text: string): number {
  const cps = [...text.replace(ANSI_RE, "")];
  let width = 0;
  for (let i = 0; i < cps.length; i++) {
    const ch = cps[i];
    const cp = ch.codePointAt(0)!;
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || ZERO_WIDTH_RE.test(ch)) continue;
    // The second half of a ZWJ sequence is drawn inside the first emoji's two columns.
    if (i > 0 && cps[i - 1] === "\u200d" && EMOJI_RE.test(ch)) continue;
    if (cp >= 0x1f1e6 && cp <= 0x1f1ff) {
      // Regional indicators: a pair is one flag, two columns.
      const next = cps[i + 1]?.codePointAt(0) ?? 0;
      if (next >= 0x1f1e6 && next <= 0x1f1ff) i++;
      width += 2;
    } else if (EMOJI_PRESENTATION_RE.test(ch)) width += 2;
    else if (cps[i + 1] === "\ufe0f" && EMOJI_RE.test(ch)) width += 2;
    else if (isWide(cp)) width += 2;
    else width += 1;
  }
  return width;
}

/** Replaces control characters (which could move the cursor or recolour the terminal) with `?`. */
export function sanitize(text: string): string {
  return text.replace(CONTROL_RE, "?");
}

/** Cuts `text` (no ANSI codes) to at most `width` columns, ending in `…` when cut. */
export function truncate(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  if (width <= 0) return "";
  let out = "";
  let w = 0;
  for (const ch of text) {
    const cw = displayWidth(ch);
    if (w + cw > width - 1) break;
    out += ch;
    w += cw;
  }
  return out + "…";
}

/** Pads `text` (ANSI codes allowed) with spaces to exactly `width` columns, truncating first. */
export function fit(text: string, width: number): string {
  let out = text;
  if (displayWidth(out) > width) out = truncate(out.replace(ANSI_RE, ""), width);
  return out + " ".repeat(Math.max(0, width - displayWidth(out)));
}

/** `h:mm:ss`, e.g. `0:00:45`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

/** A compact rate such as `1.2M/s`, right-aligned in 7 columns (`-` when idle). */
export function formatRate(bytesPerSecond: number): string {
  if (!(bytesPerSecond >= 0.5)) return "-".padStart(7, " ");
  const units = ["B", "K", "M", "G", "T"];
  let n = bytesPerSecond;
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  const num = i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 1 : 0);
  return `${num}${units[i]}/s`.padStart(7, " ");
}

/**
 * A progress bar of `width` cells. A partial bar never looks full and any progress shows at
 * least one cell, so 1 of 500 pieces and 499 of 500 are both distinguishable from the ends.
 */
export function progressBar(pieces: number, pieceCount: number, width: number): string {
  let filled = 0;
  if (pieceCount > 0 && pieces >= pieceCount) filled = width;
  else if (pieceCount > 0 && pieces > 0) {
    filled = Math.min(width - 1, Math.max(1, Math.floor((pieces / pieceCount) * width)));
  }
  return "█".repeat(filled) + "░".repeat(width - filled);
}

const STYLE = {
  bold: "\x1b[1m",
  dim: "\x1b[2m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  cyan: "\x1b[36m",
  reset: "\x1b[0m",
};

/**
 * Draws the dashboard box for `snapshot`: title, uptime, peer count and file, then one row per
 * peer in join order with its role, a progress bar, pieces, percentage and rates. Every line is
 * exactly `options.width` columns wide (see {@linkcode displayWidth}). Lines are joined by `\n`.
 */
export function renderDashboard(snapshot: Snapshot, options: DashboardOptions): string {
  const width = Math.max(MIN_WIDTH, Math.floor(options.width));
  const inner = width - 4; // "│ " + content + " │"
  const paint = (style: keyof typeof STYLE, s: string) =>
    options.color ? STYLE[style] + s + STYLE.reset : s;
  const line = (content: string) => `│ ${fit(content, inner)} │`;
  const rule = (l: string, r: string) => l + "─".repeat(width - 2) + r;

  const title = "🔗 SWARM TRACKER";
  const left = Math.floor((inner - displayWidth(title)) / 2);
  const out: string[] = [
    rule("╭", "╮"),
    line(" ".repeat(Math.max(0, left)) + paint("bold", title)),
    rule("├", "┤"),
    line(header(snapshot, inner)),
    rule("├", "┤"),
  ];

  const peers = snapshot.peers;
  if (peers.length === 0) {
    out.push(line(paint("dim", "Waiting for a seeder…")));
  } else {
    // 6 lines of chrome around the rows; keep room for a "… more" line when cut.
    const room = options.height === undefined
      ? peers.length
      : Math.max(1, Math.floor(options.height) - 6);
    const shown = peers.length <= room ? peers : peers.slice(0, room - 1);
    const layout = rowLayout(peers, inner);
    shown.forEach((p, i) => out.push(line(renderRow(p, i + 1, layout, paint))));
    if (shown.length < peers.length) {
      out.push(line(paint("dim", `… and ${peers.length - shown.length} more peers`)));
    }
  }
  out.push(rule("╰", "╯"));
  return out.join("\n");
}

/** The summary line: the most detailed variant that fits in `inner` columns. */
function header(snapshot: Snapshot, inner: number): string {
  const n = snapshot.peers.length;
  const seeders = snapshot.peers.filter((p) => p.role === "seeder").length;
  const uptime = `🕒 Uptime: ${formatDuration(snapshot.uptimeMs)}`;
  const peers = `👥 Peers: ${n}`;
  const split = n > 0 ? ` (${seeders} seeding, ${n - seeders} leeching)` : "";
  const meta = snapshot.metainfo;
  const name = meta ? sanitize(meta.name) : "";
  const file = (nameText: string, size: boolean) =>
    meta
      ? `📦 ${nameText} ${meta.pieceCount} pieces${size ? `, ${formatBytes(meta.length)}` : ""}`
      : "📦 no file yet";
  const candidates = [
    `${uptime}   ${peers}${split}   ${file(name, true)}`,
    `${uptime}   ${peers}   ${file(name, true)}`,
    `${uptime}   ${peers}   ${file(name, false)}`,
  ];
  const fits = candidates.find((c) => displayWidth(c) <= inner);
  if (fits) return fits;
  // Cut the file name rather than the piece count.
  const room = inner - displayWidth(`${uptime}   ${peers}   ${file("", false)}`);
  return `${uptime}   ${peers}   ${file(truncate(name, Math.max(4, room)), false)}`;
}

interface RowLayout {
  indexWidth: number;
  idWidth: number;
  barWidth: number;
  countWidth: number;
  rates: boolean;
}

const ROLE_WIDTH = 7; // "leecher"
const PERCENT_WIDTH = 6; // "100.0%"
const RATES_WIDTH = 18; // " ↓" + 7 + " ↑" + 7

/** A row's name: the peer's id, plus its client for BitTorrent clients that announced. */
function rowName(p: PeerRow): string {
  return p.client ? `${p.id} ${p.client}` : p.id;
}

function rowLayout(peers: readonly PeerRow[], inner: number): RowLayout {
  const indexWidth = String(peers.length).length + 1;
  const maxCount = Math.max(0, ...peers.map((p) => p.pieceCount));
  const countWidth = Math.max(3, 2 * String(maxCount).length + 1);
  let idWidth = Math.min(30, Math.max(...peers.map((p) => displayWidth(sanitize(rowName(p))))));
  // index, id, role, "[" bar "]", count, percent, with single/double spaces between.
  const fixed = () =>
    indexWidth + 1 + idWidth + 2 + ROLE_WIDTH + 2 + 2 + 1 + countWidth + 1 +
    PERCENT_WIDTH;
  let spare = inner - fixed();
  const rates = spare >= 10 + RATES_WIDTH;
  if (rates) spare -= RATES_WIDTH;
  if (spare < 6) {
    // Narrow terminal: give the bar its minimum by shortening the id column.
    idWidth = Math.max(8, idWidth - (6 - spare));
    spare = inner - fixed();
  }
  return { indexWidth, idWidth, barWidth: Math.max(4, Math.min(40, spare)), countWidth, rates };
}

function renderRow(
  p: PeerRow,
  n: number,
  l: RowLayout,
  paint: (style: keyof typeof STYLE, s: string) => string,
): string {
  const index = `${n}.`.padStart(l.indexWidth, " ");
  const id = fit(truncate(sanitize(rowName(p)), l.idWidth), l.idWidth);
  const role = paint(p.role === "seeder" ? "green" : "yellow", p.role.padEnd(ROLE_WIDTH, " "));
  const known = p.pieceCount > 0;
  const bar = progressBar(p.pieces, p.pieceCount, l.barWidth);
  const barColor = p.pieceCount > 0 && p.pieces >= p.pieceCount ? "green" : "cyan";
  const count = (known ? `${p.pieces}/${p.pieceCount}` : "?").padStart(l.countWidth, " ");
  const percent = (known ? `${p.percent.toFixed(1)}%` : "–").padStart(PERCENT_WIDTH, " ");
  let row = `${index} ${id}  ${role}  [${paint(barColor, bar)}] ${count} ${percent}`;
  if (l.rates) {
    row += paint("dim", ` ↓${formatRate(p.downloadRate)} ↑${formatRate(p.uploadRate)}`);
  }
  return row;
}

/**
 * Wraps dashboard lines for an in-place redraw without flicker: cursor home, each line followed
 * by clear-to-end-of-line, and clear-to-end-of-screen after the last, so one write replaces the
 * previous frame without blanking it first.
 */
export function screenFrame(lines: readonly string[]): string {
  return "\x1b[H" + lines.map((l) => l + "\x1b[K").join("\n") + "\x1b[J";
}

/** `HH:MM:SS` local time, the prefix of every log line. */
export function clockTime(at: number): string {
  const d = new Date(at);
  return [d.getHours(), d.getMinutes(), d.getSeconds()]
    .map((n) => String(n).padStart(2, "0"))
    .join(":");
}

/** One plain log line for `event` (for when stdout is not a terminal), without a newline. */
export function renderLogLine(event: LogEvent): string {
  const t = clockTime(event.at);
  switch (event.type) {
    case "joined":
      return `${t} ${sanitize(event.id)} ${
        event.replaced ? "rejoined" : "joined"
      } as ${event.role}` +
        ` from ${sanitize(event.address)}`;
    case "left":
      return `${t} ${sanitize(event.id)} left`;
    case "expired":
      return `${t} ${sanitize(event.id)} expired after ${
        (event.silentMs / 1000).toFixed(1)
      } s of silence`;
    case "complete":
      return `${t} ${sanitize(event.id)} completed the download in ${
        formatDuration(event.elapsedMs)
      } and is now seeding`;
    case "published":
      return `${t} ${sanitize(event.id)} published ${
        JSON.stringify(sanitize(event.name))
      } (${event.pieceCount} pieces, info-hash ${event.infoHash})`;
    case "reset":
      return `${t} the swarm is empty; forgot ${JSON.stringify(sanitize(event.name))}`;
    case "progress": {
      const pct = event.pieceCount > 0 ? (event.pieces / event.pieceCount) * 100 : 0;
      return `${t} ${sanitize(event.id)} has ${event.pieces}/${event.pieceCount} pieces (${
        pct.toFixed(1)
      }%)`;
    }
  }
}
