/**
 * The XML-RPC format (http://xmlrpc.com/spec.md): values, method calls, responses and faults,
 * written with string templates and read by a small hand-written parser of exactly the XML that
 * XML-RPC needs.
 *
 * The parser is meant for untrusted input. It accepts an optional XML declaration, elements
 * (attributes are skipped), text with the five predefined entities and numeric character
 * references, CDATA sections inside values, comments and whitespace between elements. It refuses,
 * with an {@linkcode XmlRpcParseError}, everything else: document types and entity declarations,
 * other processing instructions, unknown entities, malformed numbers, booleans, base64 or dates,
 * mismatched tags, trailing content, and documents past its {@linkcode ParseLimits} (length,
 * nesting, number of values), each checked before anything is allocated for it.
 *
 * Values map to JavaScript as: `<int>`/`<i4>`/`<i8>`/`<double>` ↔ `number`, `<boolean>` ↔
 * `boolean`, `<string>` (or a `<value>` with no type) ↔ `string`, `<base64>` ↔ `Uint8Array`,
 * `<dateTime.iso8601>` ↔ `Date` (UTC, since the format has no time zone), `<array>` ↔ array,
 * `<struct>` ↔ plain object, `<nil/>` ↔ `null`.
 *
 * @example
 * ```ts
 * import { parseMethodCall, serializeMethodResponse } from "./xmlrpc.ts";
 * const call = parseMethodCall(
 *   "<methodCall><methodName>demo.add</methodName><params>" +
 *     "<param><value><int>2</int></value></param><param><value><i4>3</i4></value></param>" +
 *     "</params></methodCall>",
 * );
 * call.methodName; // "demo.add"
 * serializeMethodResponse((call.params[0] as number) + (call.params[1] as number));
 * // '<?xml version="1.0"?><methodResponse><params><param><value><int>5</int></value>…'
 * ```
 * @module
 */

/**
 * A value XML-RPC can carry (see the module documentation for the mapping of each type).
 *
 * @example
 * ```ts
 * import type { XmlRpcValue } from "./xmlrpc.ts";
 * const v: XmlRpcValue = [1, "two", { three: new Uint8Array([3]) }, null, new Date(0)];
 * ```
 */
export type XmlRpcValue =
  | null
  | boolean
  | number
  | string
  | Date
  | Uint8Array
  | XmlRpcValue[]
  | XmlRpcStruct;

/**
 * An XML-RPC `<struct>`: named members.
 *
 * @example
 * ```ts
 * import type { XmlRpcStruct } from "./xmlrpc.ts";
 * const s: XmlRpcStruct = { name: "a", bits: new Uint8Array([0x80]) };
 * ```
 */
export type XmlRpcStruct = { [member: string]: XmlRpcValue };

/**
 * Fault codes of the interoperability conventions most servers follow
 * (http://xmlrpc-epi.sourceforge.net/specs/rfc.fault_codes.php).
 *
 * @example
 * ```ts
 * import { XmlRpcError, XmlRpcFault } from "./xmlrpc.ts";
 * new XmlRpcFault(XmlRpcError.notFound, 'Method "x" not found');
 * ```
 */
export const XmlRpcError = {
  /** The method failed for a reason of its own. */
  application: -32500,
  /** No such method. */
  notFound: -32601,
  /** The parameters do not fit the method. */
  invalidParams: -32602,
} as const;

/**
 * A fault: an XML-RPC call answered with a code and a message instead of a value. Handlers throw
 * it to refuse a call; {@linkcode parseMethodResponse} throws it when the response is a fault.
 *
 * @example
 * ```ts
 * import { parseMethodResponse, serializeFault, XmlRpcFault } from "./xmlrpc.ts";
 * try {
 *   parseMethodResponse(serializeFault(4, "Too many parameters."));
 * } catch (e) {
 *   if (e instanceof XmlRpcFault) console.log(e.faultCode, e.faultString); // 4 Too many parameters.
 * }
 * ```
 */
export class XmlRpcFault extends Error {
  /** Builds the fault. */
  constructor(
    /** The fault code (an `int`). */
    readonly faultCode: number,
    /** The fault's message. */
    readonly faultString: string,
  ) {
    super(`XML-RPC fault ${faultCode}: ${faultString}`);
    this.name = "XmlRpcFault";
  }
}

/**
 * The text is not an XML-RPC document this parser accepts; the message says why and where.
 *
 * @example
 * ```ts
 * import { parseMethodCall, XmlRpcParseError } from "./xmlrpc.ts";
 * try {
 *   parseMethodCall("<methodCall><methodName>a</methodName></methodCall> junk");
 * } catch (e) {
 *   if (e instanceof XmlRpcParseError) console.log(e.message, e.offset);
 * }
 * ```
 */
export class XmlRpcParseError extends Error {
  /** Builds the error. */
  constructor(
    message: string,
    /** Where in the text (in UTF-16 code units) the problem was found. */
    readonly offset: number,
  ) {
    super(message);
    this.name = "XmlRpcParseError";
  }
}

/**
 * Bounds a parse stays within; a document past any of them is refused before anything is
 * allocated for the offending part.
 *
 * @example
 * ```ts
 * import { parseMethodCall } from "./xmlrpc.ts";
 * parseMethodCall("<methodCall><methodName>a</methodName></methodCall>", { maxLength: 65536 });
 * ```
 */
export interface ParseLimits {
  /** Longest document, in UTF-16 code units (default {@linkcode DEFAULT_LIMITS}.maxLength). */
  maxLength?: number;
  /** Deepest nesting of values; a parameter is depth 1 (default 32). */
  maxDepth?: number;
  /** Most `<value>` elements in the document (default 100,000). */
  maxValues?: number;
}

/**
 * The limits used where {@linkcode ParseLimits} leaves one out. `maxLength` is generous (32 Mi
 * code units, the peers' cap on tracker answers); servers pass their own request-body cap.
 *
 * @example
 * ```ts
 * import { DEFAULT_LIMITS } from "./xmlrpc.ts";
 * DEFAULT_LIMITS.maxDepth; // 32
 * ```
 */
export const DEFAULT_LIMITS: Readonly<Required<ParseLimits>> = {
  maxLength: 32 << 20,
  maxDepth: 32,
  maxValues: 100_000,
};

/**
 * A parsed method call.
 *
 * @example
 * ```ts
 * import { type MethodCall, parseMethodCall } from "./xmlrpc.ts";
 * const c: MethodCall = parseMethodCall("<methodCall><methodName>x</methodName></methodCall>");
 * c.params; // []
 * ```
 */
export interface MethodCall {
  /** The method's name, as sent. */
  methodName: string;
  /** The parameters, in order. */
  params: XmlRpcValue[];
}

// ---------------------------------------------------------------------------------------------
// Writing

const XML_DECL = '<?xml version="1.0"?>';
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
/** How deep {@linkcode serializeValue} goes: as deep as the parser accepts (and no cycles). */
const WRITE_DEPTH = DEFAULT_LIMITS.maxDepth;

/**
 * Characters text cannot hold as they are: markup (`&`, `<`, and `>` so that `]]>` never
 * appears), carriage returns (an XML parser would turn them into line feeds), and the characters
 * XML 1.0 forbids outright.
 */
// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE = /[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/;
// deno-lint-ignore no-control-regex
const ESCAPES = /[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g;

function escapeChar(c: string): string {
  switch (c) {
    case "&":
      return "&amp;";
    case "<":
      return "&lt;";
    case ">":
      return "&gt;";
    case "\r":
      return "&#13;";
    default:
      // XML 1.0 cannot carry these even as character references.
      return "\ufffd";
  }
}

/**
 * Escapes `text` for an XML element's content. `&`, `<` and `>` become entities and `\r` a
 * character reference; characters XML 1.0 cannot carry at all (most control characters, lone
 * surrogates, U+FFFE and U+FFFF) become U+FFFD, the replacement character, rather than failing
 * the whole message.
 *
 * @example
 * ```ts
 * import { escapeText } from "./xmlrpc.ts";
 * escapeText("a < b && c"); // "a &lt; b &amp;&amp; c"
 * escapeText("bell\x07"); // "bell\ufffd"
 * ```
 */
export function escapeText(text: string): string {
  if (!text.isWellFormed()) text = text.toWellFormed();
  return NEEDS_ESCAPE.test(text) ? text.replace(ESCAPES, escapeChar) : text;
}

/** `YYYYMMDDTHH:MM:SS` in UTC, the spec's own layout (no zone, no fraction). */
function formatDate(d: Date): string {
  const t = d.getTime();
  if (!Number.isFinite(t)) throw new TypeError("an invalid Date cannot be sent as XML-RPC");
  const year = d.getUTCFullYear();
  if (year < 0 || year > 9999) {
    throw new TypeError(`the year ${year} does not fit XML-RPC's dateTime.iso8601`);
  }
  const p2 = (n: number) => (n < 10 ? "0" : "") + n;
  return `${String(year).padStart(4, "0")}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}T` +
    `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
}

function writeValue(v: XmlRpcValue, out: string[], depth: number): void {
  if (depth > WRITE_DEPTH) {
    throw new TypeError(`values nested deeper than ${WRITE_DEPTH} (or a cycle) cannot be sent`);
  }
  switch (typeof v) {
    case "string":
      out.push("<value><string>", escapeText(v), "</string></value>");
      return;
    case "number":
      if (Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX) {
        out.push("<value><int>", String(v), "</int></value>");
      } else if (Number.isFinite(v)) {
        // The spec's only integer is 32-bit and it has no <i8>, which some implementations do
        // not know; a double carries every integer up to 2^53 exactly and everyone reads it.
        out.push("<value><double>", String(v), "</double></value>");
      } else {
        throw new TypeError(`${v} cannot be sent as XML-RPC, which has no infinities or NaN`);
      }
      return;
    case "boolean":
      out.push(v ? "<value><boolean>1</boolean></value>" : "<value><boolean>0</boolean></value>");
      return;
    case "object":
      if (v === null) {
        out.push("<value><nil/></value>");
      } else if (v instanceof Uint8Array) {
        out.push("<value><base64>", v.toBase64(), "</base64></value>");
      } else if (Array.isArray(v)) {
        out.push("<value><array><data>");
        for (const item of v) writeValue(item === undefined ? null : item, out, depth + 1);
        out.push("</data></array></value>");
      } else if (v instanceof Date) {
        out.push("<value><dateTime.iso8601>", formatDate(v), "</dateTime.iso8601></value>");
      } else {
        out.push("<value><struct>");
        for (const name in v) {
          if (!Object.hasOwn(v, name)) continue;
          const member = v[name];
          // Like JSON: an absent optional field is left out rather than sent as nil.
          if (member === undefined) continue;
          out.push("<member><name>", escapeText(name), "</name>");
          writeValue(member, out, depth + 1);
          out.push("</member>");
        }
        out.push("</struct></value>");
      }
      return;
    default:
      throw new TypeError(`a ${typeof v} cannot be sent as XML-RPC`);
  }
}

/**
 * The `<value>` element for `value`. Integers in the 32-bit range are written as `<int>`, other
 * numbers as `<double>`; `null` as `<nil/>` (an extension most implementations accept). Throws a
 * `TypeError` for what XML-RPC cannot carry: `NaN`, infinities, invalid dates, functions, and
 * values nested deeper than the parser accepts (which also stops cycles).
 *
 * @example
 * ```ts
 * import { serializeValue } from "./xmlrpc.ts";
 * serializeValue({ n: 2 ** 40, ok: true });
 * // "<value><struct><member><name>n</name><value><double>1099511627776</double></value>…"
 * ```
 */
export function serializeValue(value: XmlRpcValue): string {
  const out: string[] = [];
  writeValue(value, out, 1);
  return out.join("");
}

/**
 * A whole `<methodCall>` document, with its XML declaration.
 *
 * @example
 * ```ts
 * import { serializeMethodCall } from "./xmlrpc.ts";
 * serializeMethodCall("examples.getStateName", [41]);
 * // '<?xml version="1.0"?><methodCall><methodName>examples.getStateName</methodName>…'
 * ```
 */
export function serializeMethodCall(methodName: string, params: readonly XmlRpcValue[]): string {
  const out = [XML_DECL, "<methodCall><methodName>", escapeText(methodName), "</methodName>"];
  out.push("<params>");
  for (const p of params) {
    out.push("<param>");
    writeValue(p, out, 1);
    out.push("</param>");
  }
  out.push("</params></methodCall>");
  return out.join("");
}

/**
 * A `<methodResponse>` document carrying one value.
 *
 * @example
 * ```ts
 * import { serializeMethodResponse } from "./xmlrpc.ts";
 * serializeMethodResponse("South Dakota");
 * // '<?xml version="1.0"?><methodResponse><params><param><value><string>South Dakota</string>…'
 * ```
 */
export function serializeMethodResponse(value: XmlRpcValue): string {
  const out = [XML_DECL, "<methodResponse><params><param>"];
  writeValue(value, out, 1);
  out.push("</param></params></methodResponse>");
  return out.join("");
}

/**
 * A `<methodResponse>` document carrying a fault. A code outside the 32-bit range, which
 * `faultCode`'s `int` cannot hold, becomes {@linkcode XmlRpcError}.application.
 *
 * @example
 * ```ts
 * import { serializeFault } from "./xmlrpc.ts";
 * serializeFault(4, "Too many parameters.");
 * // '<?xml version="1.0"?><methodResponse><fault><value><struct><member><name>faultCode</name>…'
 * ```
 */
export function serializeFault(faultCode: number, faultString: string): string {
  const code = Number.isInteger(faultCode) && faultCode >= INT32_MIN && faultCode <= INT32_MAX
    ? faultCode
    : XmlRpcError.application;
  return `${XML_DECL}<methodResponse><fault><value><struct>` +
    `<member><name>faultCode</name><value><int>${code}</int></value></member>` +
    `<member><name>faultString</name><value><string>${
      escapeText(faultString)
    }</string></value></member>` +
    `</struct></value></fault></methodResponse>`;
}

// ---------------------------------------------------------------------------------------------
// Reading

const LT = 0x3c; // <
const GT = 0x3e; // >
const SLASH = 0x2f; // /

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d;
}

function isNameChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2e || c === 0x2d || c === 0x5f || c === 0x3a;
}

function isAllSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!isSpace(s.charCodeAt(i))) return false;
  return true;
}

/** A short, printable quotation of untrusted text for an error message. */
function show(s: string): string {
  return JSON.stringify(s.length > 40 ? s.slice(0, 40) + "…" : s);
}

const PREDEFINED: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
};

const INT_TEXT = /^[+-]?[0-9]+$/;
const DOUBLE_TEXT = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const DATE_TEXT =
  /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}(?::?\d{2})?)?$/;
const DECLARATIONS = "document type, entity and other <! declarations are not accepted";

class Parser {
  readonly #s: string;
  readonly #maxDepth: number;
  readonly #maxValues: number;
  #pos = 0;
  #values = 0;
  /** Whether the start tag just read was `<name/>`. */
  #empty = false;

  constructor(s: string, limits: ParseLimits) {
    const maxLength = limits.maxLength ?? DEFAULT_LIMITS.maxLength;
    if (s.length > maxLength) {
      throw new XmlRpcParseError(
        `the document is ${s.length} characters long, more than the ${maxLength} accepted`,
        0,
      );
    }
    this.#s = s;
    this.#maxDepth = limits.maxDepth ?? DEFAULT_LIMITS.maxDepth;
    this.#maxValues = limits.maxValues ?? DEFAULT_LIMITS.maxValues;
  }

  fail(message: string, at = this.#pos): never {
    throw new XmlRpcParseError(`${message} (at character ${at})`, at);
  }

  /** A byte-order mark, then an optional `<?xml …?>` declaration and whitespace or comments. */
  prolog(): void {
    const s = this.#s;
    if (s.charCodeAt(0) === 0xfeff) this.#pos = 1;
    if (s.startsWith("<?xml", this.#pos) && isSpace(s.charCodeAt(this.#pos + 5))) {
      const end = s.indexOf("?>", this.#pos);
      if (end < 0) this.fail("the XML declaration is not closed");
      const decl = s.slice(this.#pos + 5, end);
      if (decl.includes("<")) this.fail("the XML declaration is not closed");
      this.#pos = end + 2;
    }
    this.misc();
  }

  /** After the root element: only whitespace and comments. */
  epilog(root: string): void {
    this.misc();
    if (this.#pos < this.#s.length) {
      this.fail(`unexpected content after </${root}>: ${show(this.#s.slice(this.#pos))}`);
    }
  }

  /**
   * Skips whitespace and comments between elements; stops at anything else. Declarations and
   * processing instructions are refused here, wherever they appear.
   */
  misc(): void {
    const s = this.#s;
    let p = this.#pos;
    while (p < s.length) {
      const c = s.charCodeAt(p);
      if (isSpace(c)) {
        p++;
      } else if (c === LT && s.charCodeAt(p + 1) === 0x21 /* ! */) {
        if (s.startsWith("<!--", p)) {
          p = this.#skipComment(p);
        } else if (s.startsWith("<![CDATA[", p)) {
          this.fail("a CDATA section is only allowed inside a value", p);
        } else {
          this.fail(DECLARATIONS, p);
        }
      } else if (c === LT && s.charCodeAt(p + 1) === 0x3f /* ? */) {
        this.fail("processing instructions are not accepted", p);
      } else {
        break;
      }
    }
    this.#pos = p;
  }

  #skipComment(at: number): number {
    const end = this.#s.indexOf("-->", at + 4);
    if (end < 0) this.fail("a comment is not closed", at);
    return end + 3;
  }

  /** Whether a closing tag comes next (after {@linkcode Parser.misc}). */
  atEndTag(): boolean {
    return this.#s.charCodeAt(this.#pos) === LT && this.#s.charCodeAt(this.#pos + 1) === SLASH;
  }

  /**
   * Reads a start tag `<name …>` or `<name …/>` and returns its name; attributes (which XML-RPC
   * does not use) are read and ignored. Sets {@linkcode Parser.empty}.
   */
  startTag(expected: string): string {
    const s = this.#s;
    const at = this.#pos;
    if (at >= s.length) this.fail(`the document ends where ${expected} was expected`);
    if (s.charCodeAt(at) !== LT) {
      this.fail(`expected ${expected}, found text ${show(s.slice(at, at + 40))}`);
    }
    let p = at + 1;
    while (p < s.length && isNameChar(s.charCodeAt(p))) p++;
    const name = s.slice(at + 1, p);
    if (name === "") {
      this.fail(`expected ${expected}, found ${show(s.slice(at, at + 40))}`);
    }
    // Attributes: name = "value" or 'value'.
    while (true) {
      const q = p;
      while (p < s.length && isSpace(s.charCodeAt(p))) p++;
      const c = s.charCodeAt(p);
      if (c === GT) {
        this.#empty = false;
        this.#pos = p + 1;
        return name;
      }
      if (c === SLASH && s.charCodeAt(p + 1) === GT) {
        this.#empty = true;
        this.#pos = p + 2;
        return name;
      }
      const nameStart = p;
      while (p < s.length && isNameChar(s.charCodeAt(p))) p++;
      if (p === nameStart || p === q) this.fail(`the start tag <${name}> is malformed`, p);
      while (p < s.length && isSpace(s.charCodeAt(p))) p++;
      if (s.charCodeAt(p) !== 0x3d /* = */) this.fail(`the start tag <${name}> is malformed`, p);
      p++;
      while (p < s.length && isSpace(s.charCodeAt(p))) p++;
      const quote = s[p];
      if (quote !== '"' && quote !== "'") this.fail(`the start tag <${name}> is malformed`, p);
      const end = s.indexOf(quote, p + 1);
      if (end < 0 || s.slice(p + 1, end).includes("<")) {
        this.fail(`the start tag <${name}> is malformed`, p);
      }
      p = end + 1;
    }
  }

  get empty(): boolean {
    return this.#empty;
  }

  /** Reads a start tag that must be `<name>`; returns whether it was `<name/>`. */
  expectStart(name: string): boolean {
    const at = this.#pos;
    const found = this.startTag(`<${name}>`);
    if (found !== name) this.fail(`expected <${name}>, found <${found}>`, at);
    return this.#empty;
  }

  /** Reads `</name>`. */
  expectEnd(name: string): void {
    const s = this.#s;
    const at = this.#pos;
    let p = at + 2;
    if (
      s.charCodeAt(at) === LT && s.charCodeAt(at + 1) === SLASH && s.startsWith(name, p) &&
      !isNameChar(s.charCodeAt(p + name.length))
    ) {
      p += name.length;
      while (p < s.length && isSpace(s.charCodeAt(p))) p++;
      if (s.charCodeAt(p) === GT) {
        this.#pos = p + 1;
        return;
      }
    }
    if (at >= s.length) this.fail(`the document ends where </${name}> was expected`);
    this.fail(`expected </${name}>, found ${show(s.slice(at, at + 40))}`);
  }

  /**
   * Reads character data up to the next tag: text with entities and character references
   * decoded, CDATA sections taken as they are, comments skipped.
   */
  text(): string {
    const s = this.#s;
    let out = "";
    while (true) {
      const lt = s.indexOf("<", this.#pos);
      if (lt < 0) this.fail("the document ends inside an element");
      if (lt > this.#pos) out += this.#decode(this.#pos, lt);
      this.#pos = lt;
      if (s.charCodeAt(lt + 1) === 0x21 /* ! */) {
        if (s.startsWith("<![CDATA[", lt)) {
          const end = s.indexOf("]]>", lt + 9);
          if (end < 0) this.fail("a CDATA section is not closed");
          out += newlines(s.slice(lt + 9, end));
          this.#pos = end + 3;
          continue;
        }
        if (s.startsWith("<!--", lt)) {
          this.#pos = this.#skipComment(lt);
          continue;
        }
        this.fail(DECLARATIONS);
      }
      if (s.charCodeAt(lt + 1) === 0x3f /* ? */) {
        this.fail("processing instructions are not accepted");
      }
      return out;
    }
  }

  /** Text between `from` and `to` with its references replaced. */
  #decode(from: number, to: number): string {
    const s = this.#s;
    let amp = s.indexOf("&", from);
    if (amp < 0 || amp >= to) return newlines(s.slice(from, to));
    let out = "";
    let last = from;
    while (amp >= 0 && amp < to) {
      out += newlines(s.slice(last, amp));
      const semi = s.indexOf(";", amp + 1);
      // The longest reference is "&#x10FFFF;" or "&#1114111;": 10 characters.
      if (semi < 0 || semi >= to || semi - amp > 10) {
        this.fail(`a "&" does not start an entity or character reference`, amp);
      }
      const ref = s.slice(amp + 1, semi);
      let ch = PREDEFINED[ref];
      if (ch === undefined || !Object.hasOwn(PREDEFINED, ref)) {
        if (ref.charCodeAt(0) !== 0x23 /* # */) this.fail(`unknown entity &${ref};`, amp);
        const hex = ref[1] === "x";
        const digits = ref.slice(hex ? 2 : 1);
        if (!(hex ? /^[0-9a-fA-F]{1,6}$/ : /^[0-9]{1,7}$/).test(digits)) {
          this.fail(`malformed character reference &${ref};`, amp);
        }
        const code = parseInt(digits, hex ? 16 : 10);
        if (!isXmlChar(code)) this.fail(`&${ref}; is not a character XML allows`, amp);
        ch = String.fromCodePoint(code);
      }
      out += ch;
      last = semi + 1;
      amp = s.indexOf("&", last);
    }
    return out + newlines(s.slice(last, to));
  }

  /** Text of a leaf element whose start tag was just read, and its end tag. */
  leaf(name: string): string {
    if (this.#empty) return "";
    const t = this.text();
    this.expectEnd(name);
    return t;
  }

  /** A `<value>` element at nesting `depth` (1 for a parameter). */
  value(depth: number): XmlRpcValue {
    const at = this.#pos;
    this.expectStart("value");
    if (++this.#values > this.#maxValues) {
      this.fail(`more than ${this.#maxValues} values`, at);
    }
    if (depth > this.#maxDepth) this.fail(`values nested deeper than ${this.#maxDepth}`, at);
    if (this.#empty) return "";
    const before = this.text();
    if (this.atEndTag()) {
      // No type element: a string, whitespace and all (the spec's default).
      this.expectEnd("value");
      return before;
    }
    if (!isAllSpace(before)) this.fail(`text ${show(before)} before a typed value`, at);
    const typeAt = this.#pos;
    const type = this.startTag("a value type");
    const v = this.#typed(type, depth, typeAt);
    this.misc();
    this.expectEnd("value");
    return v;
  }

  #typed(type: string, depth: number, at: number): XmlRpcValue {
    switch (type) {
      case "string":
        return this.leaf(type);
      case "int":
      case "i4": {
        const t = this.leaf(type).trim();
        const n = Number(t);
        if (!INT_TEXT.test(t)) this.fail(`<${type}> holds ${show(t)}, not an integer`, at);
        if (!(n >= INT32_MIN && n <= INT32_MAX)) {
          this.fail(`<${type}> ${show(t)} is out of the 32-bit range`, at);
        }
        return n;
      }
      case "i8": {
        const t = this.leaf(type).trim();
        if (!INT_TEXT.test(t)) this.fail(`<i8> holds ${show(t)}, not an integer`, at);
        const n = Number(t);
        if (!Number.isSafeInteger(n)) this.fail(`<i8> ${show(t)} is beyond ±(2^53 - 1)`, at);
        return n;
      }
      case "double": {
        const t = this.leaf(type).trim();
        const n = Number(t);
        if (!DOUBLE_TEXT.test(t)) this.fail(`<double> holds ${show(t)}, not a number`, at);
        if (!Number.isFinite(n)) this.fail(`<double> ${show(t)} is out of range`, at);
        return n;
      }
      case "boolean": {
        const t = this.leaf(type).trim();
        if (t === "1") return true;
        if (t === "0") return false;
        return this.fail(`<boolean> holds ${show(t)}, not 0 or 1`, at);
      }
      case "base64": {
        const t = this.leaf(type);
        try {
          // Skips ASCII whitespace (line breaks are common in base64), refuses anything else.
          return Uint8Array.fromBase64(t);
        } catch {
          return this.fail(`<base64> holds something that is not base64`, at);
        }
      }
      case "dateTime.iso8601":
        return this.#date(this.leaf(type).trim(), at);
      case "nil":
        if (!this.#empty) {
          this.misc();
          this.expectEnd("nil");
        }
        return null;
      case "array":
        return this.#array(depth);
      case "struct":
        return this.#struct(depth);
      default:
        return this.fail(`<${type}> is not an XML-RPC value type`, at);
    }
  }

  #array(depth: number): XmlRpcValue[] {
    const items: XmlRpcValue[] = [];
    if (this.#empty) return items;
    this.misc();
    if (!this.expectStart("data")) {
      while (true) {
        this.misc();
        if (this.atEndTag()) break;
        items.push(this.value(depth + 1));
      }
      this.expectEnd("data");
    }
    this.misc();
    this.expectEnd("array");
    return items;
  }

  #struct(depth: number): XmlRpcStruct {
    const out: XmlRpcStruct = {};
    if (this.#empty) return out;
    while (true) {
      this.misc();
      if (this.atEndTag()) break;
      const at = this.#pos;
      if (this.expectStart("member")) this.fail("a <member> without a name and a value", at);
      this.misc();
      this.expectStart("name");
      const name = this.leaf("name");
      this.misc();
      const v = this.value(depth + 1);
      this.misc();
      this.expectEnd("member");
      if (name === "__proto__") {
        // A plain assignment would replace the object's prototype instead of adding a member.
        Object.defineProperty(out, name, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        out[name] = v;
      }
    }
    this.expectEnd("struct");
    return out;
  }

  #date(t: string, at: number): Date {
    const m = DATE_TEXT.exec(t);
    if (m === null) this.fail(`<dateTime.iso8601> holds ${show(t)}, not a date and time`, at);
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
    const ms = m[7] === undefined ? 0 : Math.floor(Number(`0.${m[7]}`) * 1000);
    let offset = 0;
    const zone = m[8];
    if (zone !== undefined && zone !== "Z") {
      const digits = zone.replace(":", "");
      offset = (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5) || "0")) *
        (zone[0] === "-" ? -1 : 1);
    }
    const d = new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms));
    d.setUTCFullYear(year); // Date.UTC maps years 0-99 to 1900-1999
    if (
      d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day || d.getUTCHours() !== hour ||
      d.getUTCMinutes() !== minute || d.getUTCSeconds() !== second
    ) {
      this.fail(`<dateTime.iso8601> ${show(t)} is not a valid date and time`, at);
    }
    return new Date(d.getTime() - offset * 60_000);
  }

  /** A `<params>` element (its start tag already read) with at most `most` params. */
  params(most: number): XmlRpcValue[] {
    const params: XmlRpcValue[] = [];
    if (this.#empty) return params;
    while (true) {
      this.misc();
      if (this.atEndTag()) break;
      const at = this.#pos;
      if (params.length === most) this.fail("a method response holds exactly one <param>", at);
      if (this.expectStart("param")) this.fail("a <param> without a value", at);
      this.misc();
      params.push(this.value(1));
      this.misc();
      this.expectEnd("param");
    }
    this.expectEnd("params");
    return params;
  }
}

/** XML 1.0's Char production, for character references. */
function isXmlChar(c: number): boolean {
  return c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && c <= 0xd7ff) ||
    (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
}

/** XML's end-of-line handling: literal `\r\n` and `\r` are read as `\n`. */
function newlines(s: string): string {
  return s.includes("\r") ? s.replace(/\r\n?/g, "\n") : s;
}

/**
 * Parses a `<methodCall>` document.
 *
 * @throws {XmlRpcParseError} when the text is not a method call this parser accepts.
 *
 * @example
 * ```ts
 * import { parseMethodCall } from "./xmlrpc.ts";
 * const { methodName, params } = parseMethodCall(
 *   '<?xml version="1.0"?><methodCall><methodName>examples.getStateName</methodName>' +
 *     "<params><param><value><i4>41</i4></value></param></params></methodCall>",
 * );
 * // methodName "examples.getStateName", params [41]
 * ```
 */
export function parseMethodCall(xml: string, limits: ParseLimits = {}): MethodCall {
  const p: Parser = new Parser(xml, limits);
  p.prolog();
  if (p.expectStart("methodCall")) p.fail("a <methodCall> without a <methodName>");
  p.misc();
  p.expectStart("methodName");
  const methodName = p.leaf("methodName");
  p.misc();
  let params: XmlRpcValue[] = [];
  if (!p.atEndTag()) {
    p.expectStart("params");
    params = p.params(Infinity);
    p.misc();
  }
  p.expectEnd("methodCall");
  p.epilog("methodCall");
  return { methodName, params };
}

/**
 * Parses a `<methodResponse>` document and returns its value.
 *
 * @throws {XmlRpcFault} when the response is a fault (its `faultCode` and `faultString`).
 * @throws {XmlRpcParseError} when the text is not a method response this parser accepts.
 *
 * @example
 * ```ts
 * import { parseMethodResponse } from "./xmlrpc.ts";
 * parseMethodResponse(
 *   "<methodResponse><params><param><value><string>South Dakota</string></value></param>" +
 *     "</params></methodResponse>",
 * ); // "South Dakota"
 * ```
 */
export function parseMethodResponse(xml: string, limits: ParseLimits = {}): XmlRpcValue {
  const p: Parser = new Parser(xml, limits);
  p.prolog();
  if (p.expectStart("methodResponse")) p.fail("a <methodResponse> without params or a fault");
  p.misc();
  const kind = p.startTag("<params> or <fault>");
  let value: XmlRpcValue;
  let fault: XmlRpcFault | undefined;
  if (kind === "params") {
    const params = p.params(1);
    if (params.length !== 1) p.fail("a method response holds exactly one <param>");
    value = params[0];
  } else if (kind === "fault") {
    if (p.empty) p.fail("a <fault> without a value");
    p.misc();
    value = p.value(1);
    p.misc();
    p.expectEnd("fault");
    const f = value;
    if (
      f === null || typeof f !== "object" || Array.isArray(f) || f instanceof Date ||
      f instanceof Uint8Array || typeof f.faultCode !== "number" ||
      !Number.isInteger(f.faultCode) || typeof f.faultString !== "string"
    ) {
      p.fail("a fault must be a struct of an int faultCode and a string faultString");
    }
    fault = new XmlRpcFault(f.faultCode, f.faultString);
  } else {
    p.fail(`expected <params> or <fault>, found <${kind}>`);
  }
  p.misc();
  p.expectEnd("methodResponse");
  p.epilog("methodResponse");
  if (fault) throw fault;
  return value;
}
