/**
 * `deno task experiment`: the classroom experiment that shows a P2P swarm beating client-server
 * distribution, measured against the theory (Kurose & Ross, "Computer Networking", §2.5: the
 * minimum distribution time of a file of F bits to N peers).
 *
 * For every N (default 1, 2, 4, 8, 16, 32) and both modes it runs a real swarm (tracker, one
 * seeder, N leechers as processes) with the seeder's upload capped at u_s and each leecher's at u,
 * and records the time until the last leecher holds a verified copy beside its lower bound:
 *
 * - client-server: D_cs >= max(N·F/u_s, F/d_min)
 * - P2P:           D_p2p >= max(F/u_s, F/d_min, N·F/(u_s + N·u))
 *
 * and how busy the uploaders were (bytes sent / (cap × time active)). It prints a table as runs
 * complete and writes `experiment.csv`, `experiment.json` and the figure `experiment.svg` (measured
 * points over the two theoretical curves) into `--out` (default bench/results/).
 *
 * @example
 * ```sh
 * deno task experiment                      # the full default run, about 12 minutes
 * deno task experiment --n 2,8 --size 16MiB # a quick look
 * ```
 * @module
 */

import { FatalError, main, parseOptions, parseRate, parseSize, UsageError } from "../lib/cli.ts";
import { freePort } from "../lib/process.ts";
import { runSwarm, type SwarmSummary } from "../lib/swarm_runner.ts";

const USAGE = `usage: deno task experiment [options]
Runs a capped swarm for every N and mode, compares each distribution time with its lower bound
(Kurose & Ross) and writes experiment.csv, experiment.json and experiment.svg.
options:
  --n LIST             numbers of leechers, comma-separated (default 1,2,4,8,16,32; each 1-64)
  --modes LIST         client-server and/or p2p, comma-separated (default client-server,p2p)
  --size SIZE          the file, F (default 64MiB)
  --seed-up RATE       the seeder's upload cap, u_s (default 8MiB/s)
  --peer-up RATE       each leecher's upload cap, u (default 4MiB/s)
  --peer-down RATE     each leecher's download cap, d (default: none, d_min = infinity)
  --piece-length SIZE  piece length (default 128KiB)
  --out DIR            where the CSV, JSON and SVG go (default bench/results/)
  --replot             run nothing: redraw experiment.svg (and the CSV) from --out's
                       experiment.json
  --keep-data          keep the temporary folder with the file, the copies and the peers' logs
  --verbose            show each swarm's own summary lines
  --json               print one JSON object with every row as the last line
  --help               show this help`;

/** The two ways of distributing the file. */
export type Mode = "client-server" | "p2p";

/** The experiment's parameters, in bytes and bytes per second. */
export interface Params {
  /** F: the file's size, bytes. */
  size: number;
  /** u_s: the seeder's upload cap, bytes/s. */
  seedUp: number;
  /** u: each leecher's upload cap, bytes/s. */
  peerUp: number;
  /** d: each leecher's download cap, bytes/s; undefined means none (d_min = ∞). */
  peerDown?: number;
  /** Piece length, bytes. */
  pieceLength: number;
}

/** One measured point, as printed, written and plotted. */
export interface Row {
  mode: Mode;
  n: number;
  /** Seconds until the last leecher held a verified copy. */
  measured_s: number;
  /** The theoretical minimum for this mode and N. */
  bound_s: number;
  /** measured_s / bound_s (≥ 1 unless the bound is wrong). */
  ratio: number;
  /**
   * Mean over leechers of uploaded / (u × the time it had something to upload, i.e. some connected
   * peer was interested in its pieces); null in client-server (leechers upload nothing) and with
   * one leecher (nobody to upload to).
   */
  mean_upload_utilisation: number | null;
  /** The seeder's uploaded / (u_s × measured_s). */
  seeder_utilisation: number;
}

/** What else a run showed, for whoever tunes the engine. */
export interface Details {
  mode: Mode;
  n: number;
  /** Lowest leecher utilisation (null in client-server). */
  min_upload_utilisation: number | null;
  /**
   * The stricter reading: mean of uploaded / (u × time from its first verified piece to the end),
   * which also counts the moments when nobody wanted anything it had.
   */
  mean_util_since_first_piece: number | null;
  /** Seconds from the first spawn until the last leecher process was running (spawn + load). */
  last_start_s: number;
  /** Mean seconds from the first spawn until a leecher held its first verified piece. */
  mean_first_piece_s: number;
  /** Seconds from the first spawn until the first leecher completed. */
  first_complete_s: number;
  /** measured_s - first_complete_s: how long the last copies trailed the first. */
  tail_s: number;
  /** Bytes the seeder sent. */
  seeder_uploaded: number;
  /** Bytes all leechers sent. */
  leechers_uploaded: number;
  /** (seeder + leechers uploaded) / (N·F): above 1 means bytes sent twice or wasted. */
  uploaded_over_nf: number;
  /** Bytes of verified pieces all leechers stored / (N·F): should be 1. */
  downloaded_over_nf: number;
  /** Mean upload rate of the whole swarm over the run / (u_s + N·u) (p2p, N > 1) or u_s. */
  capacity_used: number;
  /** Every copy byte-identical to the original. */
  identical: boolean;
}

const MIB = 1024 * 1024;

/** Client-server bound for (possibly fractional) n: max(N·F/u_s, F/d_min). */
export function clientServerBound(n: number, p: Params): number {
  return Math.max(n * p.size / p.seedUp, p.peerDown ? p.size / p.peerDown : 0);
}

/** P2P bound for (possibly fractional) n: max(F/u_s, F/d_min, N·F/(u_s + N·u)). */
export function p2pBound(n: number, p: Params): number {
  return Math.max(
    p.size / p.seedUp,
    p.peerDown ? p.size / p.peerDown : 0,
    n * p.size / (p.seedUp + n * p.peerUp),
  );
}

/** The bound of `mode`. */
export function bound(mode: Mode, n: number, p: Params): number {
  return mode === "p2p" ? p2pBound(n, p) : clientServerBound(n, p);
}

/**
 * Seconds one run is expected to take, start-up and SHA-256 checks included (measured on a 2-core
 * machine: about 4 s per run plus 0.3 s per leecher on top of the distribution itself).
 */
export function estimateRunSeconds(mode: Mode, n: number, p: Params): number {
  return bound(mode, n, p) * (mode === "p2p" ? 1.2 : 1.03) + 4 + 0.3 * n * p.size / (64 * MIB);
}

/** Turns a swarm's summary into the row and the details. */
export function analyse(mode: Mode, n: number, p: Params, s: SwarmSummary): [Row, Details] {
  const T = s.distributionSeconds;
  const b = bound(mode, n, p);
  const utils: number[] = [];
  const spanUtils: number[] = [];
  const firstPieces: number[] = [];
  const starts: number[] = [];
  let leechersUp = 0;
  let leechersDown = 0;
  for (const l of s.leechers) {
    const st = l.stats;
    leechersUp += st?.uploaded ?? l.uploaded ?? 0;
    leechersDown += st?.downloaded ?? 0;
    // The peer's own clock starts once its modules are loaded, after the runner spawned it:
    // that lag is what its `seconds` (from the spawn) exceed its `completeMs` by.
    const lag = st?.completeMs != null ? Math.max(0, l.seconds - st.completeMs / 1000) : 0;
    starts.push(l.startOffset + lag);
    if (st?.firstPieceMs == null) continue;
    const first = l.startOffset + lag + st.firstPieceMs / 1000;
    firstPieces.push(first);
    // With one leecher there is nobody to upload to: n/a.
    if (mode === "p2p" && n > 1) {
      const span = Math.max(0.001, T - first);
      spanUtils.push(st.uploaded / (p.peerUp * span));
      // Peers before this field existed: the span is the best estimate of the active time.
      const active = st.interestedMs != null ? Math.max(0.001, st.interestedMs / 1000) : span;
      utils.push(st.uploaded / (p.peerUp * active));
    }
  }
  const seederUp = s.seeder?.uploaded ?? 0;
  const mean = (xs: number[]) => xs.length ? xs.reduce((a, x) => a + x, 0) / xs.length : 0;
  const firstComplete = Math.min(...s.leechers.map((l) => l.startOffset + l.seconds));
  const nf = n * p.size;
  // (One P2P leecher has nobody to upload to: its capacity is the seeder's, as in the bound.)
  const capacity = mode === "p2p" && n > 1 ? p.seedUp + n * p.peerUp : p.seedUp;
  const row: Row = {
    mode,
    n,
    measured_s: round(T, 3),
    bound_s: round(b, 3),
    ratio: round(T / b, 3),
    mean_upload_utilisation: mode === "p2p" && utils.length ? round(mean(utils), 3) : null,
    seeder_utilisation: round(seederUp / (p.seedUp * T), 3),
  };
  const details: Details = {
    mode,
    n,
    min_upload_utilisation: mode === "p2p" && utils.length ? round(Math.min(...utils), 3) : null,
    mean_util_since_first_piece: mode === "p2p" && spanUtils.length
      ? round(mean(spanUtils), 3)
      : null,
    last_start_s: round(Math.max(...starts), 3),
    mean_first_piece_s: round(mean(firstPieces), 3),
    first_complete_s: round(firstComplete, 3),
    tail_s: round(T - firstComplete, 3),
    seeder_uploaded: seederUp,
    leechers_uploaded: leechersUp,
    uploaded_over_nf: round((seederUp + leechersUp) / nf, 4),
    downloaded_over_nf: round(leechersDown / nf, 4),
    capacity_used: round((seederUp + leechersUp) / T / capacity, 3),
    identical: s.identical,
  };
  return [row, details];
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------------------------------------
// Output: table, CSV, JSON

const pct = (x: number | null | undefined) => x == null ? "n/a" : `${(100 * x).toFixed(1)}%`;

const TABLE_HEAD = "mode            N  measured s   bound s   ratio  leecher util  seeder util";

/** One table line for a row. */
export function tableLine(r: Row): string {
  return `${r.mode.padEnd(13)} ${String(r.n).padStart(3)}  ${
    r.measured_s.toFixed(1).padStart(10)
  }` +
    `  ${r.bound_s.toFixed(1).padStart(8)}  ${r.ratio.toFixed(2).padStart(6)}` +
    `  ${pct(r.mean_upload_utilisation).padStart(12)}  ${pct(r.seeder_utilisation).padStart(11)}`;
}

const DETAILS_HEAD =
  "mode            N  last start  1st piece  1st done   tail  sent/NF  min util  span util  capacity used";

function detailsLine(d: Details): string {
  return `${d.mode.padEnd(13)} ${String(d.n).padStart(3)}  ${
    d.last_start_s.toFixed(2).padStart(9)
  }s` +
    `  ${d.mean_first_piece_s.toFixed(2).padStart(8)}s  ${
      d.first_complete_s.toFixed(1).padStart(7)
    }s` +
    `  ${d.tail_s.toFixed(1).padStart(5)}s  ${d.uploaded_over_nf.toFixed(3).padStart(7)}` +
    `  ${pct(d.min_upload_utilisation).padStart(8)}  ${
      pct(d.mean_util_since_first_piece).padStart(9)
    }` +
    `  ${pct(d.capacity_used).padStart(13)}`;
}

const CSV_COLUMNS = [
  "mode",
  "n",
  "measured_s",
  "bound_s",
  "ratio",
  "mean_upload_utilisation",
  "seeder_utilisation",
  "min_upload_utilisation",
  "mean_util_since_first_piece",
  "last_start_s",
  "mean_first_piece_s",
  "first_complete_s",
  "tail_s",
  "seeder_uploaded",
  "leechers_uploaded",
  "uploaded_over_nf",
  "downloaded_over_nf",
  "capacity_used",
  "identical",
] as const;

/** The CSV text: the rows' columns, then the details' (an empty cell is n/a). */
export function toCsv(rows: Row[], details: Details[]): string {
  const lines = [CSV_COLUMNS.join(",")];
  rows.forEach((r, i) => {
    const all: Record<string, unknown> = { ...details[i], ...r };
    lines.push(CSV_COLUMNS.map((c) => all[c] == null ? "" : String(all[c])).join(","));
  });
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// The figure

const COLORS: Record<Mode, string> = { "client-server": "#c0392b", p2p: "#1f5fa8" };

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * Text with `_x` written as a subscript x (one letter, or `_{...}`), e.g. `u_s`, `d_{min}`: the
 * subscript is shifted down and the text after it shifted back up (librsvg and browsers alike).
 */
function rich(s: string): string {
  const out: string[] = [];
  let down = false;
  for (const part of s.split(/(_\{[^}]*\}|_[A-Za-z])/)) {
    if (part === "") continue;
    if (part.startsWith("_")) {
      const sub = part.startsWith("_{") ? part.slice(2, -1) : part.slice(1);
      out.push(`<tspan dy="${down ? 0 : 3}" font-size="75%">${esc(sub)}</tspan>`);
      down = true;
    } else {
      if (!down) {
        out.push(esc(part));
        continue;
      }
      // A space that starts a tspan would be dropped (librsvg): keep it between the tspans.
      const rest = part.trimStart();
      out.push(part.slice(0, part.length - rest.length));
      if (rest === "") continue;
      out.push(`<tspan dy="-3">${esc(rest)}</tspan>`);
      down = false;
    }
  }
  return out.join("");
}

/** A "nice" step (1, 2 or 5 × 10^k) that cuts `span` into at most `maxTicks` parts. */
function niceStep(span: number, maxTicks: number): number {
  const raw = span / maxTicks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function fmtTick(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

interface Series {
  mode: Mode;
  points: { x: number; y: number; label?: string }[];
  curve: { x: number; y: number }[];
}

interface Panel {
  x0: number;
  y0: number;
  w: number;
  h: number;
  xMax: number;
  /** A log2 N axis (ticks 1, 2, 4, …) instead of a linear one from 0. */
  xLog?: boolean;
  yMax: number;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  pointLabels: boolean;
}

function drawPanel(p: Panel): string {
  const out: string[] = [];
  // The log2 axis runs from 1/1.25 to xMax·1.25, so the end markers clear the frame.
  const lo = Math.log2(1 / 1.25);
  const hi = Math.log2(p.xMax * 1.25);
  const sx = (x: number) => p.x0 + (p.xLog ? (Math.log2(x) - lo) / (hi - lo) : x / p.xMax) * p.w;
  const sy = (y: number) => p.y0 + p.h - (y / p.yMax) * p.h;
  const f = (v: number) => v.toFixed(1);
  out.push(`<g>`);
  out.push(
    `<text x="${f(p.x0 + p.w / 2)}" y="${f(p.y0 - 12)}" text-anchor="middle" font-size="14" ` +
      `font-weight="bold">${rich(p.title)}</text>`,
  );
  // Grid and ticks.
  const yStep = niceStep(p.yMax, 7);
  for (let v = 0; v <= p.yMax + 1e-9; v += yStep) {
    const y = f(sy(v));
    out.push(
      `<line x1="${f(p.x0)}" y1="${y}" x2="${f(p.x0 + p.w)}" y2="${y}" stroke="#e3e3e3"/>`,
      `<line x1="${f(p.x0 - 5)}" y1="${y}" x2="${f(p.x0)}" y2="${y}" stroke="#333"/>`,
      `<text x="${f(p.x0 - 8)}" y="${f(sy(v) + 4)}" text-anchor="end" font-size="12">${
        fmtTick(v)
      }</text>`,
    );
  }
  const xTicks: number[] = [];
  if (p.xLog) { for (let v = 1; v <= p.xMax; v *= 2) xTicks.push(v); }
  else {
    const xStep = niceStep(p.xMax, 8);
    for (let v = 0; v <= p.xMax + 1e-9; v += xStep) xTicks.push(v);
  }
  for (const v of xTicks) {
    const x = f(sx(v));
    out.push(
      `<line x1="${x}" y1="${f(p.y0)}" x2="${x}" y2="${f(p.y0 + p.h)}" stroke="#e3e3e3"/>`,
      `<line x1="${x}" y1="${f(p.y0 + p.h)}" x2="${x}" y2="${f(p.y0 + p.h + 5)}" stroke="#333"/>`,
      `<text x="${x}" y="${f(p.y0 + p.h + 19)}" text-anchor="middle" font-size="12">${
        fmtTick(v)
      }</text>`,
    );
  }
  // Axes.
  out.push(
    `<rect x="${f(p.x0)}" y="${f(p.y0)}" width="${f(p.w)}" height="${f(p.h)}" fill="none" ` +
      `stroke="#333"/>`,
    `<text x="${f(p.x0 + p.w / 2)}" y="${f(p.y0 + p.h + 40)}" text-anchor="middle" ` +
      `font-size="13">${rich(p.xLabel)}</text>`,
    `<text transform="translate(${f(p.x0 - 46)} ${f(p.y0 + p.h / 2)}) rotate(-90)" ` +
      `text-anchor="middle" font-size="13">${rich(p.yLabel)}</text>`,
  );
  // Curves, clipped to the plot.
  const clip = `clip${Math.round(p.x0)}`;
  out.push(
    `<clipPath id="${clip}"><rect x="${f(p.x0)}" y="${f(p.y0)}" width="${f(p.w)}" ` +
      `height="${f(p.h)}"/></clipPath>`,
  );
  for (const s of p.series) {
    const d = s.curve.map((c, i) => `${i ? "L" : "M"}${f(sx(c.x))},${f(sy(c.y))}`).join(" ");
    out.push(
      `<path d="${d}" fill="none" stroke="${COLORS[s.mode]}" stroke-width="2.5" ` +
        `clip-path="url(#${clip})"/>`,
    );
  }
  // Measured points: joined by a thin dashed line, then the markers on top.
  for (const s of p.series) {
    if (s.points.length > 1) {
      const d = s.points.map((c, i) => `${i ? "L" : "M"}${f(sx(c.x))},${f(sy(c.y))}`).join(" ");
      out.push(
        `<path d="${d}" fill="none" stroke="${COLORS[s.mode]}" stroke-width="1" ` +
          `stroke-dasharray="4 3" opacity="0.8" clip-path="url(#${clip})"/>`,
      );
    }
    for (const c of s.points) {
      out.push(marker(s.mode, sx(c.x), sy(c.y)));
      if (p.pointLabels && c.label) {
        out.push(
          `<text x="${f(sx(c.x))}" y="${f(sy(c.y) - 9)}" text-anchor="middle" font-size="10" ` +
            `fill="${COLORS[s.mode]}">${esc(c.label)}</text>`,
        );
      }
    }
  }
  out.push(`</g>`);
  return out.join("\n");
}

function marker(mode: Mode, x: number, y: number): string {
  const c = COLORS[mode];
  return mode === "p2p"
    ? `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4.5" fill="${c}" stroke="#fff" ` +
      `stroke-width="1"/>`
    : `<rect x="${(x - 5.5).toFixed(1)}" y="${(y - 5.5).toFixed(1)}" width="11" height="11" ` +
      `fill="${c}" stroke="#fff" stroke-width="1"/>`;
}

/** `64 MiB`, `256 KiB`, `1.5 MiB`, `1000 B`. */
export function sizeLabel(b: number): string {
  if (b >= MIB && b % (MIB / 4) === 0) return `${b / MIB} MiB`;
  if (b >= 1024 && b % 1024 === 0) return `${b / 1024} KiB`;
  return b >= MIB ? `${+(b / MIB).toFixed(2)} MiB` : `${b} B`;
}

function ceilTo(x: number, step: number): number {
  return Math.ceil(x / step - 1e-9) * step;
}

/** The SVG figure: measured distribution times over the theoretical bounds, against N. */
export function renderSvg(rows: Row[], p: Params, ns: number[], modes: Mode[]): string {
  const W = 1000;
  const H = 560;
  const maxN = Math.max(...ns, 1);
  const xMax = ceilTo(maxN + 1, niceStep(maxN + 1, 8));
  const pow2 = 2 ** Math.ceil(Math.log2(maxN));
  // Evenly spaced on both axes (linear and log2), up to past either panel's right edge.
  const curve = (mode: Mode, upTo: number) => {
    const xs: number[] = [];
    const steps = 400;
    for (let i = 0; i <= steps; i++) {
      xs.push(1 + (upTo - 1) * i / steps, upTo ** (i / steps));
    }
    return xs.sort((a, b) => a - b).map((x) => ({ x, y: bound(mode, x, p) }));
  };
  const seriesOf = (mode: Mode): Series => ({
    mode,
    curve: curve(mode, Math.max(xMax, pow2 * 1.25)),
    points: rows.filter((r) => r.mode === mode).sort((a, b) => a.n - b.n).map((r) => ({
      x: r.n,
      y: r.measured_s,
      label: `×${r.ratio.toFixed(2)}`,
    })),
  });
  const all = modes.map(seriesOf);
  const yTop = (ss: Series[]) => {
    const m = Math.max(
      ...ss.flatMap((s) => [...s.points.map((q) => q.y), bound(s.mode, maxN, p)]),
    );
    return ceilTo(m * 1.08, niceStep(m * 1.08, 7));
  };
  const rate = (b: number) => `${+(b / MIB).toFixed(2)} MiB/s`;
  const withZoom = modes.includes("p2p") && modes.includes("client-server");
  const main: Panel = {
    x0: 80,
    y0: 90,
    w: withZoom ? 540 : 860,
    h: 380,
    xMax,
    yMax: yTop(all),
    title: "Both modes",
    xLabel: "N, number of peers downloading the file",
    yLabel: "time to distribute the file to all N (s)",
    series: all,
    pointLabels: !withZoom,
  };
  if (!withZoom) main.title = modes[0] === "p2p" ? "P2P" : "Client-server";
  const parts: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
    `viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" ` +
    `fill="#222">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="30" text-anchor="middle" font-size="19" font-weight="bold">` +
    `Distribution time: ${
      withZoom ? "client-server vs P2P" : modes[0] === "p2p" ? "P2P" : "client-server"
    } (F = ${sizeLabel(p.size)})</text>`,
    `<text x="${W / 2}" y="52" text-anchor="middle" font-size="13" fill="#555">${
      rich(
        `u_s = ${rate(p.seedUp)} (server), u = ${rate(p.peerUp)} (each peer), d = ${
          p.peerDown ? rate(p.peerDown) : "∞"
        }, ${sizeLabel(p.pieceLength)} pieces; lines: lower bounds, markers: measured`,
      )
    }</text>`,
    drawPanel(main),
  ];
  if (withZoom) {
    const p2p = all.filter((s) => s.mode === "p2p");
    parts.push(drawPanel({
      x0: 720,
      y0: 90,
      w: 250,
      h: 380,
      xMax: pow2,
      xLog: true,
      yMax: yTop(p2p),
      title: "P2P close-up (measured / bound)",
      xLabel: "N (log scale)",
      yLabel: "time (s)",
      series: p2p,
      pointLabels: true,
    }));
  }
  // Legend, top left inside the main panel (the client-server line rises to the right).
  const lx = main.x0 + 14;
  let ly = main.y0 + 14;
  const legend: string[] = [];
  const fInf = p.peerDown ? ", F/d_{min}" : "";
  const entries: [Mode, "line" | "marker", string][] = [];
  if (modes.includes("client-server")) {
    entries.push([
      "client-server",
      "line",
      p.peerDown ? `client-server bound max(N·F/u_s${fInf})` : "client-server bound N·F/u_s",
    ]);
    entries.push(["client-server", "marker", "client-server, measured"]);
  }
  if (modes.includes("p2p")) {
    entries.push(["p2p", "line", `P2P bound max(F/u_s${fInf}, N·F/(u_s + N·u))`]);
    entries.push(["p2p", "marker", "P2P, measured"]);
  }
  const boxW = 330;
  legend.push(
    `<rect x="${lx - 8}" y="${ly - 6}" width="${boxW}" height="${entries.length * 20 + 8}" ` +
      `fill="#fff" fill-opacity="0.92" stroke="#bbb"/>`,
  );
  for (const [mode, kind, text] of entries) {
    const cy = ly + 8;
    legend.push(
      kind === "line"
        ? `<line x1="${lx}" y1="${cy}" x2="${lx + 28}" y2="${cy}" stroke="${COLORS[mode]}" ` +
          `stroke-width="2.5"/>`
        : marker(mode, lx + 14, cy),
      `<text x="${lx + 38}" y="${cy + 4}" font-size="12">${rich(text)}</text>`,
    );
    ly += 20;
  }
  parts.push(...legend);
  parts.push(
    `<text x="${W / 2}" y="${H - 14}" text-anchor="middle" font-size="11" fill="#777">` +
      `Bounds after Kurose &amp; Ross, Computer Networking, §2.5 (for real, non-integer N as ` +
      `well). Made by deno task experiment.</text>`,
    `</svg>`,
  );
  return parts.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Running

function parseList<T>(text: string, what: string, item: (s: string) => T): T[] {
  const parts = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.length === 0) throw new UsageError(`${what} must not be empty`);
  const items = parts.map(item);
  if (new Set(items).size !== items.length) throw new UsageError(`${what} repeats a value`);
  return items;
}

/** Is `port` free for listening (on every IPv4 address, and on ::1 where IPv6 exists)? */
function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "0.0.0.0", port }).close();
  } catch {
    return false;
  }
  try {
    Deno.listen({ hostname: "::1", port }).close();
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) return false;
    // No IPv6 here: fine.
  }
  return true;
}

/**
 * A base port B such that B..B+count-1 are free: random bases from 20000, below the kernel's
 * ephemeral range (where outgoing connections take their ports) when that can be read.
 */
async function freeRange(count: number, avoid: number): Promise<number> {
  let hi = 60000;
  try {
    const lo = Number(
      (await Deno.readTextFile("/proc/sys/net/ipv4/ip_local_port_range"))
        .trim().split(/\s+/)[0],
    );
    if (lo - 20000 > count + 100) hi = lo;
  } catch {
    // Not Linux: keep the default.
  }
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (hi - 20000 - count));
    if (avoid >= base && avoid < base + count) continue;
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = portFree(base + i);
    if (ok) return base;
  }
  throw new Error(`found no ${count} free consecutive ports from 20000 to ${hi}`);
}

function fmtDuration(s: number): string {
  const m = Math.floor(s / 60);
  const r = Math.round(s - 60 * m);
  return m ? `${m} min ${String(r).padStart(2, "0")} s` : `${r} s`;
}

interface Outputs {
  csv: string;
  json: string;
  svg: string;
}

async function writeOutputs(
  out: string,
  rows: Row[],
  details: Details[],
  params: Record<string, unknown>,
  p: Params,
  ns: number[],
  modes: Mode[],
): Promise<Outputs> {
  await Deno.mkdir(out, { recursive: true });
  const files = {
    csv: `${out}/experiment.csv`,
    json: `${out}/experiment.json`,
    svg: `${out}/experiment.svg`,
  };
  await Deno.writeTextFile(files.csv, toCsv(rows, details));
  await Deno.writeTextFile(files.json, JSON.stringify({ rows, params, details }, null, 2) + "\n");
  await Deno.writeTextFile(files.svg, renderSvg(rows, p, ns, modes));
  return files;
}

/** Redraws the figure and rewrites the CSV from a previous run's experiment.json. */
async function replot(out: string): Promise<void> {
  const path = `${out}/experiment.json`;
  let saved: { rows: Row[]; details: Details[]; params: Record<string, unknown> };
  try {
    saved = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new FatalError(`cannot read ${path}: ${e instanceof Error ? e.message : e}`);
  }
  const q = saved.params ?? {};
  if (!Array.isArray(saved.rows) || typeof q.size_bytes !== "number") {
    throw new FatalError(`${path} is not an experiment's result`);
  }
  const p: Params = {
    size: q.size_bytes,
    seedUp: q.seed_up_bytes_per_s as number,
    peerUp: q.peer_up_bytes_per_s as number,
    peerDown: (q.peer_down_bytes_per_s as number | null) ?? undefined,
    pieceLength: q.piece_length_bytes as number,
  };
  const files = await writeOutputs(
    out,
    saved.rows,
    saved.details ?? [],
    q,
    p,
    q.ns as number[],
    q.modes as Mode[],
  );
  console.log(`Redrew ${files.svg} and rewrote ${files.csv} from ${path}`);
}

if (import.meta.main) {
  await main(USAGE, async () => {
    const { values } = parseOptions({
      args: Deno.args,
      strict: true,
      options: {
        n: { type: "string", default: "1,2,4,8,16,32" },
        modes: { type: "string", default: "client-server,p2p" },
        size: { type: "string", default: "64MiB" },
        "seed-up": { type: "string", default: "8MiB/s" },
        "peer-up": { type: "string", default: "4MiB/s" },
        "peer-down": { type: "string" },
        "piece-length": { type: "string", default: "128KiB" },
        out: { type: "string" },
        "keep-data": { type: "boolean", default: false },
        replot: { type: "boolean", default: false },
        verbose: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      return;
    }
    const ns = parseList(values.n, "--n", (s) => {
      if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 64) {
        throw new UsageError(`--n takes whole numbers from 1 to 64, not "${s}"`);
      }
      return Number(s);
    }).sort((a, b) => a - b);
    const modes = parseList(values.modes, "--modes", (s) => {
      if (s !== "client-server" && s !== "p2p") {
        throw new UsageError(`--modes takes client-server and/or p2p, not "${s}"`);
      }
      return s as Mode;
    });
    const p: Params = {
      size: parseSize(values.size, "--size"),
      seedUp: parseRate(values["seed-up"], "--seed-up"),
      peerUp: parseRate(values["peer-up"], "--peer-up"),
      peerDown: values["peer-down"] === undefined
        ? undefined
        : parseRate(values["peer-down"], "--peer-down"),
      pieceLength: parseSize(values["piece-length"], "--piece-length"),
    };
    if (p.pieceLength < 16 * 1024 || p.pieceLength > 64 * MIB) {
      throw new UsageError("--piece-length must be from 16KiB to 64MiB");
    }
    if (p.pieceLength > p.size) throw new UsageError("--piece-length must not exceed --size");
    const out = values.out ?? new URL("./results", import.meta.url).pathname;
    if (values.replot) {
      await replot(out);
      return;
    }

    const runs: { mode: Mode; n: number }[] = [];
    for (const n of ns) for (const mode of modes) runs.push({ mode, n });
    const estimate = runs.map((r) => estimateRunSeconds(r.mode, r.n, p));
    const totalEstimate = estimate.reduce((a, x) => a + x, 0);
    // (The CPU's model would need /proc/cpuinfo, which Deno lets only --allow-all read.)
    const cpu = `${Deno.build.arch} ${Deno.build.os}`;
    const params = {
      size_bytes: p.size,
      seed_up_bytes_per_s: p.seedUp,
      peer_up_bytes_per_s: p.peerUp,
      peer_down_bytes_per_s: p.peerDown ?? null,
      piece_length_bytes: p.pieceLength,
      ns,
      modes,
      started: new Date().toISOString(),
      deno: Deno.version.deno,
      cores: navigator.hardwareConcurrency,
      cpu,
    };
    const rate = (b: number) => `${+(b / MIB).toFixed(2)} MiB/s`;
    console.log(
      `experiment: F = ${sizeLabel(p.size)}, u_s = ${rate(p.seedUp)}, u = ${rate(p.peerUp)}, ` +
        `d = ${p.peerDown ? rate(p.peerDown) : "none (d_min = ∞)"}, pieces of ` +
        `${sizeLabel(p.pieceLength)}; N = ${ns.join(", ")}; ${modes.join(" and ")}`,
    );
    console.log(
      `${runs.length} runs; estimated total ${fmtDuration(totalEstimate)} (the bounds add up to ` +
        `${fmtDuration(runs.reduce((a, r) => a + bound(r.mode, r.n, p), 0))}; ` +
        `${navigator.hardwareConcurrency} cores, ${cpu})`,
    );

    const dir = await Deno.makeTempDir({ prefix: "swarm-experiment-" });
    const cleanup = () => {
      if (!values["keep-data"]) {
        try {
          Deno.removeSync(dir, { recursive: true });
        } catch {
          // Already gone.
        }
      }
    };
    // runSwarm stops its processes and exits on Ctrl-C; the folder goes then too.
    globalThis.addEventListener("unload", cleanup);
    // Between runs nothing else listens for Ctrl-C.
    const onIdleSignal = () => {
      cleanup();
      console.log("\nStopped (Ctrl-C).");
      Deno.exit(130);
    };
    const idle = (on: boolean) => {
      for (const sig of ["SIGINT", "SIGTERM"] as const) {
        if (on) Deno.addSignalListener(sig, onIdleSignal);
        else Deno.removeSignalListener(sig, onIdleSignal);
      }
    };

    const rows: Row[] = [];
    const details: Details[] = [];
    const t0 = performance.now();
    let allIdentical = true;
    console.log("");
    console.log(TABLE_HEAD);
    try {
      for (const [i, { mode, n }] of runs.entries()) {
        const b = bound(mode, n, p);
        const left = estimate.slice(i).reduce((a, x) => a + x, 0);
        console.log(
          `  [${i + 1}/${runs.length}] ${mode} N=${n}: bound ${b.toFixed(1)} s, ` +
            `expect ~${fmtDuration(estimate[i])}; elapsed ${
              fmtDuration((performance.now() - t0) / 1000)
            }, ~${fmtDuration(left)} to go`,
        );
        const runOnce = async () => {
          const trackerPort = freePort();
          const basePort = await freeRange(n + 1, trackerPort);
          const timeoutS = 2 * estimate[i] + 60;
          const timer = setTimeout(() => {
            console.error(
              `error: ${mode} N=${n} still running after ${fmtDuration(timeoutS)}; stopping ` +
                `(results so far are in ${out}; peer logs in ${dir}/logs)`,
            );
            values["keep-data"] = true;
            // runSwarm's own handler stops every process it started and exits.
            Deno.kill(Deno.pid, "SIGTERM");
          }, timeoutS * 1000);
          try {
            return await runSwarm({
              leechers: n,
              size: p.size,
              dir,
              mode,
              seedUp: p.seedUp,
              peerUp: p.peerUp,
              peerDown: p.peerDown,
              pieceLength: p.pieceLength,
              // Without the per-piece lines: at N = 32 the peers printed, and the runner copied to
              // the logs, hundreds of them a second, on the CPU the peers need.
              peerArgs: ["--quiet"],
              trackerPort,
              basePort,
              dashboard: false,
              log: (line) => {
                if (values.verbose) console.log(`    ${line}`);
                else if (line.startsWith("Making the test file")) console.log(`    ${line}`);
              },
            });
          } finally {
            clearTimeout(timer);
          }
        };
        idle(false);
        let summary: SwarmSummary;
        try {
          summary = await runOnce();
        } catch (e) {
          // A port taken between the check and the listen is worth one more try.
          if (!/listen|in use|address/i.test(String(e))) throw e;
          console.log(`    retrying with other ports: ${e instanceof Error ? e.message : e}`);
          summary = await runOnce();
        } finally {
          idle(true);
        }
        const [row, det] = analyse(mode, n, p, summary);
        rows.push(row);
        details.push(det);
        allIdentical &&= det.identical;
        console.log(tableLine(row) + (det.identical ? "" : "  COPIES DIFFER"));
        await writeOutputs(out, rows, details, params, p, ns, modes);
      }
    } finally {
      idle(false);
      cleanup();
      if (values["keep-data"]) console.log(`Kept the data and the peers' logs in ${dir}`);
    }

    const files = await writeOutputs(out, rows, details, params, p, ns, modes);
    const elapsed = (performance.now() - t0) / 1000;
    console.log("");
    console.log(`All ${rows.length} runs in ${fmtDuration(elapsed)}:`);
    console.log(TABLE_HEAD);
    for (const r of rows) console.log(tableLine(r));
    console.log("");
    console.log("Diagnostics (times from the first leecher's spawn):");
    console.log(DETAILS_HEAD);
    for (const d of details) console.log(detailsLine(d));
    const misses = rows.filter((r, i) =>
      r.ratio > (r.mode === "p2p" ? 1.15 : 1.05) ||
      (r.mode === "p2p" && (details[i].min_upload_utilisation ?? 1) < 0.9)
    );
    console.log(
      misses.length === 0
        ? "Every point meets the targets (P2P ≤ 1.15 × bound, client-server ≤ 1.05 ×, " +
          "each leecher ≥ 90% upload utilisation)."
        : `${misses.length} of ${rows.length} points miss the targets (P2P ≤ 1.15 × bound, ` +
          `client-server ≤ 1.05 ×, each leecher ≥ 90% upload utilisation): ` +
          misses.map((r) => `${r.mode} N=${r.n}`).join(", "),
    );
    console.log(`Wrote ${files.csv}, ${files.json} and ${files.svg}`);
    if (!allIdentical) console.log("Some copies differ from the original!");
    if (values.json) console.log(JSON.stringify({ rows, params }));
    if (!allIdentical) Deno.exit(1);
  });
}
