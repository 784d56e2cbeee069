/**
 * Tests for `lib/xmlrpc.ts`: round trips of every type, the spec's own examples, integer
 * boundaries, escaping, unicode, CDATA and comments, every refusal of the bounded parser with its
 * message, and interoperability with Python's `xmlrpc.client` both ways: its `dumps` output read
 * by our parser, and its `ServerProxy` calling the real tracker process.
 *
 * @example
 * ```sh
 * deno test -P tests/xmlrpc_test.ts
 * ```
 * @module
 */

import { makeMetainfo } from "../lib/metainfo.ts";
import { FaultCode } from "../lib/tracker_api.ts";
import { TrackerClient } from "../lib/tracker_client.ts";
import {
  escapeText,
  parseMethodCall,
  parseMethodResponse,
  serializeFault,
  serializeMethodCall,
  serializeMethodResponse,
  serializeValue,
  XmlRpcFault,
  XmlRpcParseError,
  type XmlRpcStruct,
  type XmlRpcValue,
} from "../lib/xmlrpc.ts";
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./assert.ts";
import { Swarm } from "./swarm_helpers.ts";

const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);

function response(value: string): string {
  return `<?xml version="1.0"?><methodResponse><params><param>${value}</param></params>` +
    "</methodResponse>";
}

function callWith(...params: string[]): string {
  return `<methodCall><methodName>m</methodName><params>${
    params.map((p) => `<param>${p}</param>`).join("")
  }</params></methodCall>`;
}

function withProto(v: XmlRpcValue): XmlRpcStruct {
  const s: XmlRpcStruct = { constructor: "c", toString: 1 };
  Object.defineProperty(s, "__proto__", {
    value: v,
    enumerable: true,
    writable: true,
    configurable: true,
  });
  return s;
}

Deno.test("xmlrpc: every type survives a round trip, and is written as the right type", () => {
  const cases: [string, XmlRpcValue, string][] = [
    ["zero", 0, "<int>0</int>"],
    ["int", 41, "<int>41</int>"],
    ["negative int", -12, "<int>-12</int>"],
    ["int32 max", INT32_MAX, `<int>${INT32_MAX}</int>`],
    ["int32 min", INT32_MIN, `<int>${INT32_MIN}</int>`],
    ["just past int32", INT32_MAX + 1, "<double>2147483648</double>"],
    ["just below int32", INT32_MIN - 1, "<double>-2147483649</double>"],
    ["5 GB", 5_000_000_000, "<double>5000000000</double>"],
    ["2^53 - 1", Number.MAX_SAFE_INTEGER, "<double>9007199254740991</double>"],
    ["-(2^53 - 1)", -Number.MAX_SAFE_INTEGER, "<double>-9007199254740991</double>"],
    ["double", -12.214, "<double>-12.214</double>"],
    ["tiny double", 1e-7, "<double>1e-7</double>"],
    ["huge double", 1.5e300, "<double>1.5e+300</double>"],
    ["true", true, "<boolean>1</boolean>"],
    ["false", false, "<boolean>0</boolean>"],
    ["empty string", "", "<string></string>"],
    ["string", "hello world", "<string>hello world</string>"],
    ["markup", "a <b> & c ]]> d", "<string>a &lt;b&gt; &amp; c ]]&gt; d</string>"],
    ["line ends", "a\r\nb\rc\nd\te", "<string>a&#13;\nb&#13;c\nd\te</string>"],
    ["unicode", "héllo ☃ 中文 𝄞 😀", "<string>héllo ☃ 中文 𝄞 😀</string>"],
    ["empty base64", new Uint8Array(0), "<base64></base64>"],
    [
      "base64",
      new TextEncoder().encode("you can't read this!"),
      "<base64>eW91IGNhbid0IHJlYWQgdGhpcyE=</base64>",
    ],
    ["every byte", Uint8Array.from({ length: 256 }, (_, i) => i), "<base64>AAECAwQF"],
    ["date", new Date(Date.UTC(1998, 6, 17, 14, 8, 55)), "<dateTime.iso8601>19980717T14:08:55</"],
    ["nil", null, "<nil/>"],
    ["empty array", [], "<array><data></data></array>"],
    ["array", [12, "Egypt", false, -31], "<array><data><value><int>12</int>"],
    ["nested array", [[[1, [2]]], []], "<array><data><value><array>"],
    ["empty struct", {}, "<struct></struct>"],
    [
      "struct",
      { lowerBound: 18, upperBound: 139 },
      "<struct><member><name>lowerBound</name><value><int>18</int></value></member>",
    ],
    [
      "nested struct",
      { a: { b: { c: [{ d: new Uint8Array([1]) }] } }, "x y&z": null },
      "<name>x y&amp;z</name>",
    ],
    ["struct with prototype names", withProto(7), "<name>__proto__</name><value><int>7</int>"],
  ];
  for (const [what, value, wire] of cases) {
    assertStringIncludes(serializeValue(value), wire, what);
    assertEquals(parseMethodResponse(serializeMethodResponse(value)), value, what);
    assertEquals(
      parseMethodCall(serializeMethodCall("x.y", [value, value])),
      { methodName: "x.y", params: [value, value] },
      what,
    );
  }
  // A struct member named __proto__ is a member, not the object's prototype.
  const proto = parseMethodResponse(serializeMethodResponse(withProto({ polluted: true })));
  assert(proto !== null && typeof proto === "object" && !Array.isArray(proto));
  assertEquals(Object.getPrototypeOf(proto), Object.prototype);
  assertEquals(Object.keys(proto), ["constructor", "toString", "__proto__"]);
  assertEquals(({} as Record<string, unknown>).polluted, undefined);
  // undefined members are left out, as JSON does; undefined array items are nil.
  const loose = { a: 1, b: undefined } as unknown as XmlRpcValue;
  assertEquals(parseMethodResponse(serializeMethodResponse(loose)), { a: 1 });
  assertEquals(
    parseMethodResponse(serializeMethodResponse([undefined] as unknown as XmlRpcValue)),
    [null],
  );
});

Deno.test("xmlrpc: the spec's own examples", () => {
  const request = `<?xml version="1.0"?>
<methodCall>
   <methodName>examples.getStateName</methodName>
   <params>
      <param>
         <value><i4>41</i4></value>
         </param>
      </params>
   </methodCall>
`;
  assertEquals(parseMethodCall(request), { methodName: "examples.getStateName", params: [41] });
  const struct = `<value><struct>
   <member>
      <name>lowerBound</name>
      <value><i4>18</i4></value>
      </member>
   <member>
      <name>upperBound</name>
      <value><i4>139</i4></value>
      </member>
   </struct></value>`;
  assertEquals(parseMethodResponse(response(struct)), { lowerBound: 18, upperBound: 139 });
  const array = `<value><array>
   <data>
      <value><i4>12</i4></value>
      <value><string>Egypt</string></value>
      <value><boolean>0</boolean></value>
      <value><i4>-31</i4></value>
      </data>
   </array></value>`;
  assertEquals(parseMethodResponse(response(array)), [12, "Egypt", false, -31]);
  const scalars: [string, XmlRpcValue][] = [
    ["<i4>-12</i4>", -12],
    ["<int>-12</int>", -12],
    ["<boolean>1</boolean>", true],
    ["<string>hello world</string>", "hello world"],
    ["<double>-12.214</double>", -12.214],
    ["<dateTime.iso8601>19980717T14:08:55</dateTime.iso8601>", new Date("1998-07-17T14:08:55Z")],
    [
      "<base64>eW91IGNhbid0IHJlYWQgdGhpcyE=</base64>",
      new TextEncoder().encode("you can't read this!"),
    ],
    // "If no type is indicated, the type is string", whitespace and all.
    ["  no type \n", "  no type \n"],
    ["", ""],
  ];
  for (const [inner, expected] of scalars) {
    assertEquals(parseMethodResponse(response(`<value>${inner}</value>`)), expected, inner);
  }
  const answer = `<?xml version="1.0"?>
<methodResponse>
   <params>
      <param>
         <value><string>South Dakota</string></value>
         </param>
      </params>
   </methodResponse>
`;
  assertEquals(parseMethodResponse(answer), "South Dakota");
  const fault = `<?xml version="1.0"?>
<methodResponse>
   <fault>
      <value>
         <struct>
            <member>
               <name>faultCode</name>
               <value><int>4</int></value>
               </member>
            <member>
               <name>faultString</name>
               <value><string>Too many parameters.</string></value>
               </member>
            </struct>
         </value>
      </fault>
   </methodResponse>
`;
  const f = assertThrows(() => parseMethodResponse(fault), XmlRpcFault);
  assertEquals([f.faultCode, f.faultString], [4, "Too many parameters."]);
  const ours = assertThrows(
    () => parseMethodResponse(serializeFault(4, "Too many <parameters> & more")),
    XmlRpcFault,
  );
  assertEquals([ours.faultCode, ours.faultString], [4, "Too many <parameters> & more"]);
  // A code that an int cannot hold is not sent as one.
  assertEquals(
    assertThrows(() => parseMethodResponse(serializeFault(2 ** 40, "x")), XmlRpcFault).faultCode,
    -32500,
  );
});

Deno.test("xmlrpc: integer boundaries, numbers, booleans, dates and base64 as read", () => {
  const ok: [string, XmlRpcValue][] = [
    [`<int>${INT32_MAX}</int>`, INT32_MAX],
    [`<i4>${INT32_MIN}</i4>`, INT32_MIN],
    ["<int> +007 </int>", 7],
    ["<i8>9007199254740991</i8>", Number.MAX_SAFE_INTEGER],
    ["<i8>-9007199254740991</i8>", -Number.MAX_SAFE_INTEGER],
    ["<i8>5000000000</i8>", 5_000_000_000],
    ["<double>5000000000.0</double>", 5_000_000_000],
    ["<double>1e+22</double>", 1e22],
    ["<double>.5</double>", 0.5],
    ["<double>-0</double>", -0],
    ["<boolean> 0 </boolean>", false],
    [
      "<dateTime.iso8601> 2026-01-02T03:04:05 </dateTime.iso8601>",
      new Date("2026-01-02T03:04:05Z"),
    ],
    ["<dateTime.iso8601>20260102T03:04:05Z</dateTime.iso8601>", new Date("2026-01-02T03:04:05Z")],
    [
      "<dateTime.iso8601>20260102T03:04:05+02:00</dateTime.iso8601>",
      new Date("2026-01-02T01:04:05Z"),
    ],
    [
      "<dateTime.iso8601>20260102T03:04:05.250</dateTime.iso8601>",
      new Date("2026-01-02T03:04:05.250Z"),
    ],
    ["<base64>\n  AAEC\n  /w==\n</base64>", Uint8Array.of(0, 1, 2, 255)],
    ["<base64/>", new Uint8Array(0)],
    ["<string/>", ""],
    ["<nil></nil>", null],
    ["<array><data/></array>", []],
    ["<array/>", []],
    ["<struct/>", {}],
  ];
  for (const [inner, expected] of ok) {
    assertEquals(parseMethodResponse(response(`<value>${inner}</value>`)), expected, inner);
  }
  assertEquals(parseMethodResponse(response("<value/>")), "");
});

Deno.test("xmlrpc: escaping, entities, character references, CDATA and comments", () => {
  assertEquals(escapeText("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
  // Characters XML 1.0 cannot carry become U+FFFD instead of breaking the document.
  assertEquals(
    escapeText("nul\x00 bell\x07 esc\x1b \ufffe"),
    "nul\ufffd bell\ufffd esc\ufffd \ufffd",
  );
  assertEquals(escapeText("lone \ud800 surrogate"), "lone \ufffd surrogate");
  assertEquals(escapeText("tab\tnewline\n"), "tab\tnewline\n");
  assertEquals(
    parseMethodResponse(serializeMethodResponse("x\x00y\ud800")),
    "x\ufffdy\ufffd",
  );
  const text = "<value><string>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;&#x1F600;&#13;</string></value>";
  assertEquals(parseMethodResponse(response(text)), "&<>\"'AB😀\r");
  // Literal line ends are normalised as XML requires; a CDATA section is taken as it is.
  const mixed = "<value>a\r\nb<![CDATA[<c> & ]]]]><![CDATA[>]]><!-- skipped -->d\re</value>";
  assertEquals(parseMethodResponse(response(mixed)), "a\nb<c> & ]]>d\ne");
  const commented = `<?xml version="1.0" encoding="UTF-8"?><!-- a --><methodCall>
    <!-- b --><methodName>x<!-- c -->.y</methodName><!-- d --><params><!-- e -->
    <param><!-- f --><value><!-- g --><int>1</int><!-- h --></value></param></params>
    </methodCall><!-- i -->\n`;
  assertEquals(parseMethodCall(commented), { methodName: "x.y", params: [1] });
  // A byte-order mark, attributes (which XML-RPC does not use) and no params at all are fine.
  assertEquals(
    parseMethodCall("\ufeff<methodCall a=\"1\" b='>'><methodName>n</methodName></methodCall>"),
    { methodName: "n", params: [] },
  );
});

Deno.test("xmlrpc: every refusal of the parser is an XmlRpcParseError that says why", () => {
  const deep = (n: number) =>
    response("<value><array><data>".repeat(n) + "<value/>" + "</data></array></value>".repeat(n));
  const values = (n: number) =>
    response(`<value><array><data>${"<value/>".repeat(n)}</data></array></value>`);
  const cases: [string, string, string][] = [
    [
      "DOCTYPE",
      '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]>' + callWith("<value>&a;</value>"),
      "document type, entity and other <! declarations are not accepted",
    ],
    ["lower-case doctype", "<!doctype x>" + callWith(), "declarations are not accepted"],
    ["ENTITY", callWith().replace("<params>", '<!ENTITY a "b"><params>'), "declarations"],
    ["unterminated <!", callWith().replace("<params>", "<!" + " ".repeat(1000)), "declarations"],
    ["declaration in text", response("<value>a<!ELEMENT x></value>"), "declarations"],
    ["processing instruction", '<?xml version="1.0"?><?php x ?>' + callWith(), "processing"],
    ["instruction inside", callWith("<value><?x?><int>1</int></value>"), "processing"],
    ["late XML declaration", " " + '<?xml version="1.0"?>' + callWith(), "processing"],
    ["unknown entity", response("<value>&nbsp;</value>"), "unknown entity &nbsp;"],
    ["bare ampersand", response("<value>a & b</value>"), 'a "&" does not start an entity'],
    ["reference to NUL", response("<value>&#0;</value>"), "&#0; is not a character XML allows"],
    ["reference past unicode", response("<value>&#x110000;</value>"), "not a character"],
    ["reference to a surrogate", response("<value>&#xD800;</value>"), "not a character"],
    ["malformed reference", response("<value>&#x;</value>"), "malformed character reference"],
    ["33 deep", deep(32), "values nested deeper than 32"],
    ["100,001 values", values(100_000), "more than 100000 values"],
    ["int past int32", response(`<value><int>${INT32_MAX + 1}</int></value>`), "32-bit range"],
    ["i4 past int32", response(`<value><i4>${INT32_MIN - 1}</i4></value>`), "32-bit range"],
    ["int with a fraction", response("<value><int>1.5</int></value>"), "not an integer"],
    ["empty int", response("<value><int></int></value>"), "not an integer"],
    ["hex int", response("<value><int>0x10</int></value>"), "not an integer"],
    ["i8 past 2^53", response("<value><i8>9007199254740992</i8></value>"), "beyond ±(2^53 - 1)"],
    ["5000-digit i8", response(`<value><i8>${"9".repeat(5000)}</i8></value>`), "beyond"],
    ["double out of range", response("<value><double>1e999</double></value>"), "out of range"],
    ["double nan", response("<value><double>nan</double></value>"), "not a number"],
    ["double text", response("<value><double>1,5</double></value>"), "not a number"],
    ["boolean true", response("<value><boolean>true</boolean></value>"), "not 0 or 1"],
    ["boolean 2", response("<value><boolean>2</boolean></value>"), "not 0 or 1"],
    ["base64", response("<value><base64>a!b=</base64></value>"), "not base64"],
    ["date", response("<value><dateTime.iso8601>yesterday</dateTime.iso8601></value>"), "not a"],
    [
      "impossible date",
      response("<value><dateTime.iso8601>20260230T00:00:00</dateTime.iso8601></value>"),
      "not a valid date",
    ],
    ["mismatched tag", response("<value><int>1</i4></value>"), "expected </int>"],
    ["unclosed value", response("<value><int>1</int>"), "expected </value>"],
    ["unknown type", response("<value><float>1</float></value>"), "<float> is not an XML-RPC"],
    ["text beside a type", response("<value>x<int>1</int></value>"), 'text "x" before'],
    ["trailing garbage", callWith() + "<x/>", "unexpected content after </methodCall>"],
    ["second root", response("<value/>") + "<methodResponse/>", "unexpected content after"],
    ["text between elements", callWith().replace("<params>", "junk<params>"), "found text"],
    ["CDATA between elements", callWith().replace("<params>", "<![CDATA[x]]><params>"), "CDATA"],
    ["cut short", callWith("<value><string>abc").slice(0, -30), "the document ends"],
    ["unclosed comment", callWith().replace("<params>", "<!-- x"), "comment is not closed"],
    ["unclosed CDATA", response("<value><![CDATA[x</value>"), "CDATA section is not closed"],
    ["wrong root", "<?xml version='1.0'?><foo/>", "expected <methodCall>, found <foo>"],
    ["not XML", "hello", "found text"],
    ["empty", "", "the document ends"],
    ["member without a name", response("<value><struct><member/></struct></value>"), "member"],
    [
      "member without a value",
      response("<value><struct><member><name>a</name></member></struct></value>"),
      "expected <value>",
    ],
    ["two params in a response", response("<value/></param><param><value/>"), "exactly one"],
    [
      "no param in a response",
      "<methodResponse><params></params></methodResponse>",
      "exactly one",
    ],
    [
      "fault without a code",
      "<methodResponse><fault><value><struct><member><name>faultString</name><value>x</value>" +
      "</member></struct></value></fault></methodResponse>",
      "a fault must be a struct",
    ],
    ["malformed tag", "<methodCall <methodName>", "malformed"],
  ];
  for (const [what, xml, message] of cases) {
    const parse = xml.includes("<methodResponse") ? parseMethodResponse : parseMethodCall;
    let e: XmlRpcParseError;
    try {
      e = assertThrows(() => parse(xml), XmlRpcParseError, message);
    } catch (err) {
      throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
    }
    assert(e.message.length < 200, `${what}: a short message, not ${e.message.length} chars`);
    assert(!e.message.includes("\n"), `${what}: one line`);
  }
  // The length cap is checked before anything else.
  const long = callWith(`<value>${"x".repeat(1000)}</value>`);
  const e = assertThrows(
    () => parseMethodCall(long, { maxLength: 1000 }),
    XmlRpcParseError,
    "more than the 1000 accepted",
  );
  assertEquals(e.offset, 0);
  assertThrows(() => parseMethodResponse(values(10), { maxValues: 10 }), XmlRpcParseError, "10");
  assertThrows(() => parseMethodResponse(deep(3), { maxDepth: 3 }), XmlRpcParseError, "3");
  assertEquals(parseMethodResponse(deep(31)) !== null, true);
});

Deno.test("xmlrpc: values XML-RPC cannot carry are refused when written", () => {
  const cyclic: XmlRpcValue[] = [];
  cyclic.push(cyclic);
  const cases: [string, XmlRpcValue, string][] = [
    ["NaN", NaN, "no infinities or NaN"],
    ["infinity", -Infinity, "no infinities or NaN"],
    ["invalid date", new Date(NaN), "invalid Date"],
    ["cycle", cyclic, "nested deeper than 32"],
    ["function", (() => 1) as unknown as XmlRpcValue, "a function cannot be sent"],
    ["bigint", 1n as unknown as XmlRpcValue, "a bigint cannot be sent"],
  ];
  for (const [what, value, message] of cases) {
    assertThrows(() => serializeMethodResponse(value), TypeError, message);
    assertThrows(() => serializeMethodCall("m", [{ a: [value] }]), TypeError, message);
    void what;
  }
});

async function python(script: string, args: string[] = []): Promise<string> {
  const out = await new Deno.Command("python3", {
    args: ["-c", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert(out.success, `python3 failed: ${err}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("xmlrpc: Python's xmlrpc.client.dumps output is read as Python meant it", async () => {
  const script = `
import json, datetime
from xmlrpc.client import dumps, Fault, DateTime, Binary
docs = [
  dumps((41, -2**31, 2**31 - 1, 1.5, 5e9, True, False, "héllo <&> ☃ 😀", "", None,
         Binary(bytes(range(256)) * 2), DateTime(datetime.datetime(2026, 1, 2, 3, 4, 5)),
         [1, ["a", []]], {"a": {"b": [1.25]}, "": 0}), methodname="demo.types", allow_none=True),
  dumps(({"interval": 2, "ok": True},), methodresponse=True),
  dumps(Fault(4, "Too many <parameters>"), methodresponse=True),
]
print(json.dumps(docs))
`;
  const [call, answer, fault] = JSON.parse(await python(script)) as string[];
  assertEquals(parseMethodCall(call), {
    methodName: "demo.types",
    params: [
      41,
      INT32_MIN,
      INT32_MAX,
      1.5,
      5e9,
      true,
      false,
      "héllo <&> ☃ 😀",
      "",
      null,
      Uint8Array.from({ length: 512 }, (_, i) => i % 256),
      new Date("2026-01-02T03:04:05Z"),
      [1, ["a", []]],
      { a: { b: [1.25] }, "": 0 },
    ],
  });
  assertEquals(parseMethodResponse(answer), { interval: 2, ok: true });
  const f = assertThrows(() => parseMethodResponse(fault), XmlRpcFault);
  assertEquals([f.faultCode, f.faultString], [4, "Too many <parameters>"]);
  // And Python reads what we write, big integers (as doubles) included.
  const back = await python(
    `import sys, json
from xmlrpc.client import loads
(params, method) = loads(sys.argv[1], use_builtin_types=True)
print(json.dumps([method, [p.hex() if isinstance(p, bytes) else
  p.isoformat() if hasattr(p, "isoformat") else p for p in params]]))`,
    [
      serializeMethodCall("demo.back", [
        5_000_000_000,
        INT32_MAX,
        "a\r\n<b>&\x01",
        Uint8Array.of(0, 255),
        new Date("2026-01-02T03:04:05Z"),
        { k: [true, null] },
      ]),
    ],
  );
  assertEquals(JSON.parse(back), [
    "demo.back",
    [5e9, INT32_MAX, "a\r\n<b>&\ufffd", "00ff", "2026-01-02T03:04:05", { k: [true, null] }],
  ]);
});

Deno.test("xmlrpc: Python's ServerProxy talks to the real tracker", async () => {
  const swarm = await Swarm.create();
  try {
    await swarm.startTracker();
    // A seeder of ours publishes a small metainfo, so there is something to fetch and list.
    const meta = await makeMetainfo("interop.bin", 64 * 1024, 16 * 1024, new Uint8Array(80));
    const ours = new TrackerClient(swarm.trackerUrl);
    const seeder = await ours.register({
      host: "127.0.0.1",
      port: 7001,
      peerId: "ab".repeat(20),
      role: "seeder",
    });
    await ours.publish(seeder.token, meta.info);
    await ours.reportProgress(seeder.token, Uint8Array.of(0xf0), 6_000_000_000, 0);
    const script = `
import sys, json, hashlib
from xmlrpc.client import ServerProxy, Fault, Binary, MultiCall
out = {}
with ServerProxy(sys.argv[1], use_builtin_types=True) as t:
    me = t.swarm.register({"host": "127.0.0.1", "port": 7002, "peerId": "cd" * 20,
                           "role": "leecher"})
    out["register"] = sorted(me.keys())
    out["interval"] = me["interval"]
    m = t.swarm.getMetainfo()
    out["hash_ok"] = hashlib.sha1(m["info"]).hexdigest() == m["infoHash"]
    out["report"] = t.swarm.reportProgress(me["token"], b"\\x80", 5e9, 123.0)
    peers = t.swarm.listPeers(me["token"])
    out["peers"] = [[p["id"], p["role"], p["pieces"], p["bitfield"].hex()] for p in peers]
    out["methods"] = t.system.listMethods()
    for name, call in [("bad_token", lambda: t.swarm.listPeers("nope")),
                       ("no_method", lambda: t.swarm.nope()),
                       ("arity", lambda: t.swarm.leave())]:
        try:
            call()
            out[name] = "no fault"
        except Fault as f:
            out[name] = [f.faultCode, f.faultString]
    multi = MultiCall(t)
    multi.swarm.getMetainfo()
    multi.swarm.listPeers("nope")
    results = []
    try:
        for r in multi():
            results.append(sorted(r.keys()))
    except Fault as f:
        results.append([f.faultCode, f.faultString])
    out["multicall"] = results
    out["leave"] = t.swarm.leave(me["token"])
print(json.dumps(out))
`;
    const out = JSON.parse(await python(script, [swarm.trackerUrl]));
    assertEquals(out.register, ["address", "id", "interval", "token"]);
    assertEquals(out.interval, 1);
    assertEquals(out.hash_ok, true);
    assertEquals(out.report, { interval: 1 });
    assertEquals(out.peers, [["127.0.0.1:7001", "seeder", 4, "f0"]]);
    assertEquals(out.methods, [
      "swarm.getMetainfo",
      "swarm.leave",
      "swarm.listPeers",
      "swarm.publish",
      "swarm.register",
      "swarm.reportProgress",
      "system.listMethods",
      "system.multicall",
    ]);
    assertEquals(out.bad_token[0], FaultCode.unknownToken);
    assertEquals(out.no_method, [-32601, 'Method "swarm.nope" not found']);
    assertEquals(out.arity, [FaultCode.badParams, "swarm.leave takes 1 argument, not 0"]);
    assertEquals(out.multicall[0], ["info", "infoHash"]);
    assertEquals(out.multicall[1][0], FaultCode.unknownToken);
    assertEquals(out.leave, true);
  } finally {
    await swarm.close();
  }
});
