/**
 * End-to-end tests for the tracker: the real `tracker.ts` as a child process driven through
 * `lib/tracker_client.ts` over real sockets (registration, publication, progress, peers,
 * leaving, faults, oversized and DOCTYPE bodies), its command line (usage errors, a port in
 * use), and the XML-RPC adapter and client in-process (routes, internal errors, malformed
 * answers, timeouts).
 *
 * @example
 * ```sh
 * deno test -P tests/tracker_test.ts
 * ```
 * @module
 */

import { Bitfield } from "../lib/bitfield.ts";
import { makeMetainfo, type Metainfo } from "../lib/metainfo.ts";
import { FaultCode, Methods, type Role } from "../lib/tracker_api.ts";
import {
  TrackerBadResponse,
  TrackerClient,
  TrackerFault,
  TrackerUnreachable,
} from "../lib/tracker_client.ts";
import { XmlRpcHttpServer } from "../lib/xmlrpc_server.ts";
import { parseMethodResponse, XmlRpcFault, type XmlRpcValue } from "../lib/xmlrpc.ts";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./assert.ts";

const ROOT = new URL("../", import.meta.url);
/** Generous: the first run of a test machine may still be compiling and caching modules. */
const START_TIMEOUT_MS = 30_000;
const LINE_TIMEOUT_MS = 10_000;

/** A port that was free a moment ago (listen on 0, note the port, close). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

function trackerCommand(args: string[], piped = true): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "tracker.ts", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: piped ? "piped" : "null",
    stderr: "piped",
  });
}

/** A running `tracker.ts` whose stdout lines can be awaited. */
class TrackerProcess {
  readonly lines: string[] = [];
  exited = false;
  /** Everything the tracker wrote to stderr (set by {@linkcode TrackerProcess.stop}). */
  stderrText = "";
  readonly #child: Deno.ChildProcess;
  readonly #stdout: Promise<void>;
  readonly #stderr: Promise<string>;
  readonly #status: Promise<Deno.CommandStatus>;
  #eof = false;
  #waiters = new Set<() => void>();

  constructor(readonly port: number) {
    this.#child = trackerCommand(["--port", String(port)]).spawn();
    this.#status = this.#child.status.then((s) => {
      this.exited = true;
      return s;
    });
    this.#stdout = this.#readLines();
    this.#stderr = new Response(this.#child.stderr).text();
  }

  /** The client endpoint. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  /** Starts the tracker and waits for its banner (or its early exit). */
  static async start(port = freePort()): Promise<TrackerProcess> {
    const t = new TrackerProcess(port);
    try {
      await t.waitForLine(/^tracker listening on /, START_TIMEOUT_MS);
      // The banner is printed after listen(); check the port really answers.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return t;
    } catch (e) {
      const status = await t.stop();
      throw new Error(`tracker did not start (exit ${status.code}): ${t.stderrText}`, { cause: e });
    }
  }

  /** Resolves with the first stdout line matching `re`, waiting up to `timeoutMs`. */
  waitForLine(re: RegExp, timeoutMs = LINE_TIMEOUT_MS): Promise<string> {
    const found = () => this.lines.find((l) => re.test(l));
    const now = found();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(`no line matching ${re} within ${timeoutMs} ms: ${this.lines.join(" | ")}`),
        );
      }, timeoutMs);
      const check = () => {
        const line = found();
        if (line !== undefined || this.#eof) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          if (line !== undefined) resolve(line);
          else reject(new Error(`stdout ended before a line matching ${re}`));
        }
      };
      this.#waiters.add(check);
    });
  }

  /** SIGTERM, then wait for the exit and for both pipes to drain. */
  async stop(): Promise<Deno.CommandStatus> {
    if (!this.exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
    }
    const status = await this.#status;
    await this.#stdout;
    this.stderrText = await this.#stderr;
    return status;
  }

  async #readLines(): Promise<void> {
    let buf = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      for (const w of [...this.#waiters]) w();
    }
    if (buf !== "") this.lines.push(buf);
    this.#eof = true;
    for (const w of [...this.#waiters]) w();
  }
}

function peerParams(port: number, role: Role) {
  return { host: "localhost", port, peerId: port.toString(16).padStart(40, "0"), role };
}

function meta(pieceCount: number, salt = 0): Promise<Metainfo> {
  return makeMetainfo(`file${salt}.iso`, pieceCount * 16, 16, new Uint8Array(pieceCount * 20));
}

async function expectFault(
  p: Promise<unknown>,
  code: number,
  part?: string,
): Promise<TrackerFault> {
  const e = await assertRejects(() => p, TrackerFault);
  assertEquals(e.code, code, `fault code for: ${e.message}`);
  if (part !== undefined) assertStringIncludes(e.message, part);
  assert(!e.message.includes("    at "), `no stack trace in ${JSON.stringify(e.message)}`);
  return e;
}

/** POSTs a raw body and returns the status and the decoded fault (or result). */
async function rawCall(
  url: string,
  body: BodyInit,
): Promise<{ status: number; fault?: XmlRpcFault; value?: XmlRpcValue }> {
  const res = await fetch(url, { method: "POST", body, headers: { "Content-Type": "text/xml" } });
  const text = await res.text();
  try {
    return { status: res.status, value: parseMethodResponse(text) };
  } catch (e) {
    if (e instanceof XmlRpcFault) return { status: res.status, fault: e };
    throw new Error(`not an XML-RPC response (HTTP ${res.status}): ${text.slice(0, 200)}`);
  }
}

function call(method: string, params = ""): string {
  return `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${params}</params></methodCall>`;
}

Deno.test("tracker: a whole swarm session against the real process", async (t) => {
  const tracker = await TrackerProcess.start();
  try {
    const client = new TrackerClient(tracker.url);
    const m = await meta(20);
    const url = `http://localhost:${tracker.port}/`;
    assertStringIncludes(
      tracker.lines[0],
      `tracker listening on ${url} (XML-RPC; BitTorrent announce at ${url}announce)`,
    );

    const seeder = await client.register(peerParams(9000, "seeder"));
    const leecher = await client.register(peerParams(9001, "leecher"));

    await t.step("register", async () => {
      assertEquals([seeder.id, seeder.address, seeder.interval], [
        "localhost:9000",
        "127.0.0.1",
        2,
      ]);
      assertEquals(leecher.id, "localhost:9001");
      assert(/^[0-9a-f]{32}$/.test(seeder.token) && seeder.token !== leecher.token);
      await tracker.waitForLine(/localhost:9001 joined as leecher from 127\.0\.0\.1/);
    });

    await t.step("publish and getMetainfo", async () => {
      await expectFault(client.getMetainfo(), FaultCode.notPublished);
      const junk = new Uint8Array([1, 2, 3]);
      await expectFault(client.publish(leecher.token, junk), FaultCode.badParams, "invalid");
      assertEquals(await client.publish(seeder.token, m.info), { infoHash: m.infoHashHex });
      assertEquals(await client.publish(seeder.token, m.info), { infoHash: m.infoHashHex });
      await expectFault(client.publish(seeder.token, (await meta(20, 1)).info), FaultCode.conflict);
      assertEquals(await client.getMetainfo(), { info: m.info, infoHash: m.infoHashHex });
      await tracker.waitForLine(/published "file0\.iso" \(20 pieces/);
    });

    await t.step("reportProgress and listPeers", async () => {
      const half = new Bitfield(20);
      for (let i = 0; i < 10; i++) half.set(i);
      assertEquals(await client.reportProgress(leecher.token, half.toBytes(), 0, 160), {
        interval: 2,
      });
      // Byte counts beyond XML-RPC's 32-bit int still arrive intact.
      await client.reportProgress(seeder.token, new Uint8Array(), 5 * 2 ** 32, 0);
      assertEquals(await client.listPeers(seeder.token), [{
        id: "localhost:9001",
        address: "127.0.0.1",
        port: 9001,
        peerId: peerParams(9001, "leecher").peerId,
        role: "leecher",
        pieces: 10,
        bitfield: half.toBytes(),
      }]);
      const seen = await client.listPeers(leecher.token);
      assertEquals(seen.map((p) => [p.id, p.role, p.pieces]), [["localhost:9000", "seeder", 20]]);
      assertEquals(seen[0].bitfield, Bitfield.full(20).toBytes());
    });

    await t.step("faults for bad tokens and bad parameters", async () => {
      const bogus = "0".repeat(32);
      await expectFault(
        client.reportProgress(bogus, new Uint8Array(), 0, 0),
        FaultCode.unknownToken,
      );
      await expectFault(client.listPeers("not-a-token"), FaultCode.unknownToken);
      await expectFault(client.leave(bogus), FaultCode.unknownToken);
      await expectFault(client.publish(bogus, m.info), FaultCode.unknownToken);
      await expectFault(
        client.reportProgress(leecher.token, new Uint8Array(2), 0, 0),
        FaultCode.badParams,
        "expected 3",
      );
      await expectFault(client.reportProgress(leecher.token, new Uint8Array(3), -1, 0), 1);
      await expectFault(client.register({ ...peerParams(9002, "leecher"), port: 0 }), 1);
      await expectFault(client.register({ ...peerParams(9002, "leecher"), peerId: "xyz" }), 1);
      await expectFault(
        client.register({ ...peerParams(9002, "leecher"), role: "boss" as Role }),
        FaultCode.badParams,
      );
      const cases: [string, string, number][] = [
        ["unknown method", call("swarm.nope"), -32601],
        ["wrong arity", call(Methods.listPeers), FaultCode.badParams],
        [
          "wrong type",
          call(Methods.listPeers, "<param><value><int>7</int></value></param>"),
          FaultCode.badParams,
        ],
        [
          "struct missing fields",
          call(Methods.register, "<param><value><struct></struct></value></param>"),
          FaultCode.badParams,
        ],
        ["not XML", "hello", FaultCode.badRequest],
        ["not a method call", "<?xml version='1.0'?><foo/>", FaultCode.badRequest],
        // The parser refuses values nested deeper than 32, unclosed elements and an <i8> past
        // 2^53 as malformed requests, before any method sees them.
        [
          "nesting 1400 deep, just under 64 KiB",
          call(
            Methods.listPeers,
            `<param>${"<value><array><data>".repeat(1400)}${
              "</data></array></value>".repeat(1400)
            }</param>`,
          ),
          FaultCode.badRequest,
        ],
        [
          "nesting never closed",
          call(Methods.listPeers, `<param>${"<value><array><data>".repeat(3000)}`),
          FaultCode.badRequest,
        ],
        [
          "huge integer",
          call(
            Methods.reportProgress,
            `<param><value>${leecher.token}</value></param><param><value><base64></base64>` +
              `</value></param><param><value><i8>${"9".repeat(5000)}</i8></value></param>` +
              "<param><value><int>0</int></value></param>",
          ),
          FaultCode.badRequest,
        ],
      ];
      for (const [what, body, code] of cases) {
        const r = await rawCall(tracker.url, body);
        assertEquals(r.fault?.faultCode, code, `${what}: ${r.fault?.faultString}`);
      }
      // Bytes that are not UTF-8, in a method name and in a token, get faults like any others.
      const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
      const badName = await rawCall(tracker.url, latin1(call("swarm.\xff\xfe")));
      assertEquals(badName.fault?.faultCode, -32601);
      const badToken = latin1(
        call(Methods.listPeers, "<param><value><string>\xff\xfe</string></value></param>"),
      );
      assertEquals((await rawCall(tracker.url, badToken)).fault?.faultCode, FaultCode.unknownToken);
    });

    await t.step("oversized and DOCTYPE bodies are refused", async () => {
      await expectFault(
        client.publish(seeder.token, new Uint8Array(100 * 1024)),
        FaultCode.badRequest,
        "larger than 65536 bytes",
      );
      const big = await rawCall(tracker.url, "<!--" + "x".repeat(100 * 1024) + "-->");
      assertEquals([big.status, big.fault?.faultCode], [413, FaultCode.badRequest]);
      // Without a Content-Length the cap still holds while the body streams in.
      let sent = 0;
      const chunks = new ReadableStream<Uint8Array>({
        pull(c) {
          c.enqueue(new Uint8Array(8192).fill(0x20));
          if (++sent === 20) c.close();
        },
      });
      const streamed = await rawCall(tracker.url, chunks);
      assertEquals([streamed.status, streamed.fault?.faultCode], [413, FaultCode.badRequest]);
      const laughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
        `<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>` + call(Methods.getMetainfo).slice(21);
      for (const body of [laughs, "<!doctype x>" + call(Methods.getMetainfo)]) {
        const r = await rawCall(tracker.url, body);
        assertEquals(r.fault?.faultCode, FaultCode.badRequest);
        assertStringIncludes(r.fault?.faultString ?? "", "document type");
      }
    });

    await t.step("plain HTTP: status page, wrong method, unknown path, bare announce", async () => {
      const page = await fetch(tracker.url);
      assertEquals(page.status, 200);
      const text = await page.text();
      assertStringIncludes(text, "peers: 2 (1 seeding, 1 leeching)");
      assertStringIncludes(text, "file0.iso");
      const put = await fetch(tracker.url, { method: "PUT", body: "x" });
      await put.body?.cancel();
      assertEquals([put.status, put.headers.get("allow")], [405, "GET, HEAD, POST"]);
      const missing = await fetch(new URL("/no-such-page", tracker.url));
      await missing.body?.cancel();
      assertEquals(missing.status, 404);
      // /announce is there for BitTorrent clients: a bare GET gets a bencoded failure reason.
      const bare = await fetch(new URL("/announce", tracker.url));
      assertEquals(bare.status, 200);
      assertStringIncludes(await bare.text(), "failure reason");
    });

    await t.step("a leecher that completes becomes a seeder, then leaves", async () => {
      await client.reportProgress(leecher.token, Bitfield.full(20).toBytes(), 0, 320);
      await tracker.waitForLine(/localhost:9001 completed the download in \d+:\d\d:\d\d/);
      assertEquals((await client.listPeers(seeder.token))[0].role, "seeder");
      await client.leave(leecher.token);
      await tracker.waitForLine(/localhost:9001 left$/);
      await expectFault(client.listPeers(leecher.token), FaultCode.unknownToken);
      assertEquals(await client.listPeers(seeder.token), []);
    });

    await t.step("a restarted peer replaces its old entry", async () => {
      const again = await client.register(peerParams(9000, "seeder"));
      await expectFault(client.listPeers(seeder.token), FaultCode.unknownToken);
      assertEquals(await client.listPeers(again.token), []);
      await tracker.waitForLine(/localhost:9000 rejoined as seeder/);
    });

    assert(!tracker.exited, "the tracker is still running after all of that");
    assertEquals((await client.getMetainfo()).infoHash, m.infoHashHex);
  } finally {
    const status = await tracker.stop();
    assertEquals(status.code, 0, `exit status after SIGTERM; stderr: ${tracker.stderrText}`);
  }
  assertEquals(tracker.stderrText, "", "nothing on stderr");
});

Deno.test("tracker: --port abc exits 2 with the usage on stderr", async () => {
  const out = await trackerCommand(["--port", "abc"]).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 2, stderr);
  assertStringIncludes(stderr, "--port must be a port number");
  assertStringIncludes(stderr, "usage: tracker");
});

Deno.test("tracker: unknown options and stray arguments exit 2", async () => {
  for (const args of [["--bogus"], ["extra"], ["--interval", "0"], ["--port"]]) {
    const out = await trackerCommand(args).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 2, `${args}: ${stderr}`);
    assertStringIncludes(stderr, "usage: tracker");
  }
});

Deno.test("tracker: --help prints the usage and exits 0", async () => {
  const out = await trackerCommand(["--help"]).output();
  assertEquals(out.code, 0);
  assertStringIncludes(new TextDecoder().decode(out.stdout), "--interval SECS");
});

Deno.test("tracker: a port in use exits 1 with one line and no stack trace", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = listener.addr.port;
    const out = await trackerCommand(["--port", String(port)], false).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, stderr);
    assertEquals(stderr.trimEnd().split("\n").length, 1, `one line: ${stderr}`);
    assertStringIncludes(stderr, `port ${port} is already in use`);
    assert(!stderr.includes("at "), `no stack trace: ${stderr}`);
  } finally {
    listener.close();
  }
});

Deno.test("tracker client: an unreachable tracker is TrackerUnreachable", async () => {
  const client = new TrackerClient(`http://127.0.0.1:${freePort()}/`);
  const e = await assertRejects(() => client.getMetainfo(), TrackerUnreachable);
  assertStringIncludes(e.message, "cannot reach the tracker");
  assert(e.cause !== undefined, "keeps the cause");
});

Deno.test("tracker client: a tracker that never answers times out", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  try {
    const client = new TrackerClient(`http://127.0.0.1:${listener.addr.port}/`, {
      timeoutMs: 200,
    });
    const e = await assertRejects(() => client.getMetainfo(), TrackerUnreachable);
    assertStringIncludes(e.message, "did not answer swarm.getMetainfo within 0.2 s");
  } finally {
    (await accepted).close();
    listener.close();
  }
});

Deno.test("xmlrpc server: routes, caller address, internal errors and malformed answers", async () => {
  const errors: string[] = [];
  const server = new XmlRpcHttpServer({
    methods: {
      "t.addr": (_args, ctx) => ctx.remoteAddr?.hostname ?? "none",
      "t.boom": () => {
        throw new Error("kaput");
      },
      "t.bytes": () => ({ b: new Uint8Array([1, 2, 3]) }),
      // Answers that do not match the tracker API, for the client's shape checks.
      [Methods.register]: () => ({ token: 5, id: "x", address: "y", interval: 2 }),
      [Methods.listPeers]: () => [{ id: "a", address: "b", port: 0 }],
      [Methods.getMetainfo]: () => ({ info: new Uint8Array([1]), infoHash: "0".repeat(40) }),
      [Methods.leave]: () => "yes",
    },
    routes: {
      "/announce": (req, info) => new Response(`${req.method} from ${info.remoteAddr.hostname}`),
      "/": () => new Response("cannot take over the XML-RPC path"),
    },
    statusPage: () => "demo status\n",
    onError: (e, where) => errors.push(`${where}: ${(e as Error).message}`),
  });
  await server.listen(0, "127.0.0.1");
  try {
    const url = server.url;
    assertEquals(url, `http://127.0.0.1:${server.port}/`);
    assertEquals((await rawCall(url, call("t.addr"))).value, "127.0.0.1");
    assertEquals((await rawCall(new URL("/RPC2", url).href, call("t.addr"))).value, "127.0.0.1");
    // Uint8Arrays in results travel as base64.
    const bytes = (await rawCall(url, call("t.bytes"))).value;
    const b = typeof bytes === "object" && !Array.isArray(bytes) && !(bytes instanceof Date) &&
        !(bytes instanceof Uint8Array)
      ? bytes?.b
      : undefined;
    assert(b instanceof Uint8Array, `base64 result: ${Deno.inspect(bytes)}`);
    assertEquals(new Uint8Array(b), Uint8Array.from([1, 2, 3]));
    const multi = call(
      "system.multicall",
      "<param><value><array><data><value><struct><member><name>methodName</name><value>t.addr" +
        "</value></member><member><name>params</name><value><array><data></data></array>" +
        "</value></member></struct></value></data></array></value></param>",
    );
    assertEquals((await rawCall(url, multi)).value, [["none"]]);

    const boom = (await rawCall(url, call("t.boom"))).fault!;
    assertEquals([boom.faultCode, boom.faultString], [-32500, "internal error in t.boom: kaput"]);
    assertEquals(errors, ["t.boom: kaput"]);

    // Found by the fuzzer: calls the library could not answer, each now a clear fault.
    const entries = (...values: string[]) =>
      call(
        "system.multicall",
        `<param><value><array><data>${values.join("")}</data></array></value></param>`,
      );
    const noParams = await rawCall(
      url,
      entries(
        "<value><struct><member><name>methodName</name><value>t.addr</value></member>" +
          "</struct></value>",
      ),
    );
    assertEquals(noParams.value, [{
      faultCode: -32602,
      faultString: "t.addr: params must be an array",
    }]);
    const nilEntry = (await rawCall(url, entries("<value><nil/></value>"))).fault!;
    assertEquals(nilEntry.faultCode, FaultCode.badRequest);
    // A method name that cannot be written back as XML (`]]>`, a NUL) is quoted safely.
    const odd = (await rawCall(url, call("swarm.x]]>\x01y"))).fault!;
    assertEquals([odd.faultCode, odd.faultString], [-32601, 'Method "swarm.x]]??y" not found']);
    assertEquals(errors, ["t.boom: kaput"], "none of these is an internal error");
    // Also found by the fuzzer: an unterminated `<!` made sax rescan it at every byte, so 60 KB
    // of it took half a minute of CPU. Any `<!` but a comment or CDATA is refused up front.
    for (const decl of ["<!", "<![CDATA", "<!-", "<!ELEMENT"]) {
      const slow =
        (await rawCall(url, call("t.addr").replace("<params>", decl + " ".repeat(60_000))))
          .fault!;
      assertEquals(slow.faultCode, FaultCode.badRequest, decl);
      assertStringIncludes(slow.faultString ?? "", "declarations are not accepted");
    }
    const withComment = call("t.addr").replace("<params>", "<!-- fine --><params>");
    assertEquals((await rawCall(url, withComment)).value, "127.0.0.1");
    const cdata = call("t.x", "<param><value><string><![CDATA[<a>]]></string></value></param>");
    assertEquals((await rawCall(url, cdata)).fault?.faultString, 'Method "t.x" not found');

    const announce = await fetch(new URL("/announce?info_hash=x", url));
    assertEquals(await announce.text(), "GET from 127.0.0.1");
    assertEquals(await (await fetch(url)).text(), "demo status\n");
    const rpc2 = await fetch(new URL("/RPC2", url));
    await rpc2.body?.cancel();
    assertEquals([rpc2.status, rpc2.headers.get("allow")], [405, "POST"]);

    const client = new TrackerClient(url);
    const cases: [string, () => Promise<unknown>][] = [
      ["register", () => client.register(peerParams(9000, "seeder"))],
      ["listPeers", () => client.listPeers("t")],
      ["getMetainfo", () => client.getMetainfo()],
      ["leave", () => client.leave("t")],
    ];
    for (const [what, fn] of cases) {
      const e = await assertRejects(fn, TrackerBadResponse);
      assertStringIncludes(e.message, "malformed", what);
    }
    const notRpc = new TrackerClient(new URL("/announce", url).href);
    await assertRejects(() => notRpc.leave("t"), TrackerBadResponse, "not XML-RPC");
  } finally {
    await server.shutdown();
  }
});
