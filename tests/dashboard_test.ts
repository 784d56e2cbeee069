/**
 * Tests for `lib/dashboard.ts`: display width (emoji, wide and combining characters), every line
 * of the box exactly as wide as asked, bar proportions, the empty state, truncation, escaping of
 * hostile names, and the plain log lines.
 *
 * @example
 * ```sh
 * deno test -P tests/dashboard_test.ts
 * ```
 * @module
 */

import {
  displayWidth,
  formatDuration,
  type LogEvent,
  progressBar,
  renderDashboard,
  renderLogLine,
  screenFrame,
  truncate,
} from "../lib/dashboard.ts";
import type { PeerRow, Snapshot } from "../lib/registry.ts";
import { assert, assertEquals, assertStringIncludes } from "./assert.ts";

function row(id: string, pieces: number, pieceCount: number, over: Partial<PeerRow> = {}): PeerRow {
  return {
    id,
    address: "127.0.0.1",
    role: pieceCount > 0 && pieces === pieceCount ? "seeder" : "leecher",
    pieces,
    pieceCount,
    percent: pieceCount > 0 ? (pieces / pieceCount) * 100 : 0,
    uploaded: 0,
    downloaded: 0,
    uploadRate: 0,
    downloadRate: 0,
    joinedAt: 0,
    lastSeen: 0,
    completedAt: undefined,
    ...over,
  };
}

function snapshot(peers: PeerRow[], name: string | null = "ubuntu-teste.iso"): Snapshot {
  const pieceCount = peers[0]?.pieceCount ?? 500;
  return {
    now: 45_000,
    uptimeMs: 45_000,
    interval: 2,
    metainfo: name === null
      ? undefined
      : { name, length: pieceCount << 20, pieceCount, infoHash: "ab".repeat(20) },
    peers,
  };
}

const SWARM = [
  row("localhost:9000", 500, 500),
  row("localhost:9001", 250, 500, { downloadRate: 3.5 * 1024 * 1024, uploadRate: 12_000 }),
  row("localhost:9002", 0, 500),
  row("localhost:9003", 1, 500),
];

Deno.test("dashboard: displayWidth counts terminal columns", () => {
  const cases: [string, number][] = [
    ["", 0],
    ["abc", 3],
    ["│─╭", 3],
    ["🔗", 2],
    ["📦 x", 4],
    ["中文", 4],
    ["ｈｉ", 4],
    ["e\u0301", 1],
    ["\x1b[32mab\x1b[0m", 2],
    ["👨‍👩‍👧", 2],
    ["🇧🇷", 2],
    ["❤️", 2],
    ["❤", 1],
    ["a\tb", 2],
    ["…", 1],
  ];
  for (const [text, width] of cases) assertEquals(displayWidth(text), width, JSON.stringify(text));
});

Deno.test("dashboard: truncate cuts by columns and marks the cut", () => {
  assertEquals(truncate("abcdef", 10), "abcdef");
  assertEquals(truncate("abcdef", 4), "abc…");
  assertEquals(truncate("中文中文", 5), "中文…");
  assertEquals(displayWidth(truncate("📦📦📦", 4)), 3);
});

Deno.test("dashboard: every line of the box has the requested width", () => {
  const longId = "a-very-long-host-name.example.internal:65535";
  const snapshots: [string, Snapshot][] = [
    ["empty", snapshot([], null)],
    ["swarm", snapshot(SWARM)],
    ["no metainfo yet", snapshot([row("localhost:9000", 0, 0, { role: "seeder" })], null)],
    ["long id and name", snapshot([row(longId, 3, 7)], "x".repeat(200) + ".iso")],
    ["wide name", snapshot(SWARM, "中文的文件名称.iso")],
    ["hostile name", snapshot(SWARM, "evil\x1b[2J\x07.iso")],
    ["many peers", snapshot(Array.from({ length: 120 }, (_, i) => row(`h:${i}`, i, 119)))],
  ];
  for (const [what, s] of snapshots) {
    for (const width of [40, 57, 80, 110, 200]) {
      for (const color of [false, true]) {
        const lines = renderDashboard(s, { width, color }).split("\n");
        for (const [i, line] of lines.entries()) {
          assertEquals(
            displayWidth(line),
            width,
            `${what}, width ${width}, color ${color}, line ${i}: ${JSON.stringify(line)}`,
          );
        }
        assert(lines[0].startsWith("╭") && lines.at(-1)!.startsWith("╰"), what);
        for (const line of lines) {
          // deno-lint-ignore no-control-regex
          const bare = line.replace(/\x1b\[[0-9;]*m/g, "");
          // deno-lint-ignore no-control-regex
          assert(!/[\x00-\x1f]/.test(bare), `control character in ${JSON.stringify(line)}`);
        }
      }
    }
  }
});

Deno.test("dashboard: rows show id, role, bar, pieces and percentage in join order", () => {
  const lines = renderDashboard(snapshot(SWARM), { width: 100, color: false }).split("\n");
  assertEquals(lines.length, 6 + SWARM.length);
  assertStringIncludes(lines[1], "🔗 SWARM TRACKER");
  assertStringIncludes(lines[3], "Uptime: 0:00:45");
  assertStringIncludes(lines[3], "Peers: 4");
  assertStringIncludes(lines[3], "ubuntu-teste.iso 500 pieces");
  const rows = lines.slice(5, -1);
  const cases: [string, string, string, string][] = [
    ["1. localhost:9000", "seeder", "500/500", "100.0%"],
    ["2. localhost:9001", "leecher", "250/500", "50.0%"],
    ["3. localhost:9002", "leecher", "0/500", "0.0%"],
    ["4. localhost:9003", "leecher", "1/500", "0.2%"],
  ];
  for (const [i, [id, role, count, pct]] of cases.entries()) {
    for (const part of [id, role, count, pct]) assertStringIncludes(rows[i], part, `row ${i}`);
  }
  assertStringIncludes(rows[1], "↓ 3.5M/s");
  // Bars in one box are all equally long, so the columns line up.
  const bars = rows.map((r) => /\[([█░]+)\]/.exec(r)![1]);
  assert(bars.every((b) => b.length === bars[0].length), "equal bars");
  assertEquals(bars[0], "█".repeat(bars[0].length));
  assertEquals(bars[2], "░".repeat(bars[0].length));
});

Deno.test("dashboard: bar proportions", () => {
  const cases: [number, number, number, string][] = [
    [500, 500, 20, "█".repeat(20)],
    [250, 500, 20, "█".repeat(10) + "░".repeat(10)],
    [125, 500, 20, "█".repeat(5) + "░".repeat(15)],
    [0, 500, 20, "░".repeat(20)],
    [1, 500, 20, "█" + "░".repeat(19)], // any progress shows
    [499, 500, 20, "█".repeat(19) + "░"], // almost is not full
    [3, 0, 5, "░".repeat(5)], // unknown piece count
    [1, 3, 3, "█░░"],
  ];
  for (const [pieces, count, width, bar] of cases) {
    assertEquals(progressBar(pieces, count, width), bar, `${pieces}/${count} in ${width}`);
  }
});

Deno.test("dashboard: waiting for a seeder", () => {
  const box = renderDashboard(snapshot([], null), { width: 60, color: false });
  const lines = box.split("\n");
  assertEquals(lines.length, 7);
  assertStringIncludes(lines[3], "Peers: 0");
  assertStringIncludes(lines[3], "📦 no file yet");
  assertStringIncludes(lines[5], "Waiting for a seeder…");
  const early = renderDashboard(
    snapshot([row("localhost:9000", 0, 0, { role: "seeder" })], null),
    { width: 80, color: false },
  );
  assertStringIncludes(early, "📦 no file yet");
  assertStringIncludes(early, "?");
});

Deno.test("dashboard: a height limit summarises the peers that do not fit", () => {
  const peers = Array.from({ length: 30 }, (_, i) => row(`h:${i}`, i, 30));
  const lines = renderDashboard(snapshot(peers), { width: 80, height: 12, color: false })
    .split("\n");
  assertEquals(lines.length, 12);
  assertStringIncludes(lines.at(-2)!, "… and 25 more peers");
});

Deno.test("dashboard: screenFrame redraws in place", () => {
  assertEquals(screenFrame(["a", "b"]), "\x1b[Ha\x1b[K\nb\x1b[K\x1b[J");
});

Deno.test("dashboard: formatDuration", () => {
  assertEquals(formatDuration(45_000), "0:00:45");
  assertEquals(formatDuration(3_723_999), "1:02:03");
  assertEquals(formatDuration(-5), "0:00:00");
});

Deno.test("dashboard: log lines name the peer and what happened", () => {
  const at = new Date(2024, 0, 1, 13, 5, 9).getTime();
  const cases: [LogEvent, string][] = [
    [
      {
        type: "joined",
        at,
        id: "localhost:9001",
        role: "leecher",
        address: "127.0.0.1",
        replaced: false,
      },
      "13:05:09 localhost:9001 joined as leecher from 127.0.0.1",
    ],
    [
      { type: "joined", at, id: "localhost:9001", role: "seeder", address: "::1", replaced: true },
      "13:05:09 localhost:9001 rejoined as seeder from ::1",
    ],
    [{ type: "left", at, id: "localhost:9001" }, "13:05:09 localhost:9001 left"],
    [
      { type: "expired", at, id: "localhost:9001", silentMs: 6001 },
      "13:05:09 localhost:9001 expired after 6.0 s of silence",
    ],
    [
      { type: "complete", at, id: "localhost:9001", elapsedMs: 83_000 },
      "13:05:09 localhost:9001 completed the download in 0:01:23 and is now seeding",
    ],
    [
      {
        type: "published",
        at,
        id: "localhost:9000",
        name: "a\x1b.iso",
        pieceCount: 500,
        infoHash: "ab".repeat(20),
      },
      `13:05:09 localhost:9000 published "a?.iso" (500 pieces, info-hash ${"ab".repeat(20)})`,
    ],
    [{ type: "reset", at, name: "a.iso" }, '13:05:09 the swarm is empty; forgot "a.iso"'],
    [
      { type: "progress", at, id: "localhost:9001", pieces: 250, pieceCount: 500 },
      "13:05:09 localhost:9001 has 250/500 pieces (50.0%)",
    ],
  ];
  for (const [event, line] of cases) assertEquals(renderLogLine(event), line);
});
