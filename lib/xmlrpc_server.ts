/**
 * An XML-RPC server on `Deno.serve`, reading calls and writing answers with `./xmlrpc.ts`, so the
 * tracker needs only `--allow-net`.
 *
 * It does what a server facing the network needs: a 64 KiB cap on request bodies, refusal of
 * anything the bounded parser refuses (`<!DOCTYPE`, entities, deep nesting…) as a fault that
 * says why, faults with a code and a clear message for every handler error (never a stack
 * trace), the caller's address for each method, `system.multicall` and `system.listMethods`, a
 * plain-text status page on `GET /`, and extra routes on the same port (`/announce`, `/scrape`).
 *
 * @example
 * ```ts
 * import { XmlRpcHttpServer } from "./xmlrpc_server.ts";
 * const server = new XmlRpcHttpServer({
 *   methods: {
 *     "demo.echo": (args, ctx) => ({ args, from: ctx.remoteAddr?.hostname ?? "?" }),
 *   },
 *   routes: { "/announce": (_req, _info) => new Response("d8:intervali2ee") },
 *   statusPage: () => "demo server\n",
 * });
 * await server.listen(8000, "localhost");
 * console.log(server.url); // http://localhost:8000/
 * await server.shutdown();
 * ```
 * @module
 */

import { FatalError } from "./cli.ts";
import { FaultCode } from "./tracker_api.ts";
import {
  parseMethodCall,
  serializeFault,
  serializeMethodResponse,
  XmlRpcError,
  XmlRpcFault,
  XmlRpcParseError,
  type XmlRpcValue,
} from "./xmlrpc.ts";
import { BodyTooLargeError, readBodyLimited } from "./xmlrpc_common.ts";

/** Default cap on an XML-RPC request body: 64 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Paths that answer XML-RPC `POST`s. */
export const RPC_PATHS: readonly string[] = ["/", "/RPC2"];

const MULTICALL = "system.multicall";
const LIST_METHODS = "system.listMethods";
const NOT_A_CALL = "the request body is not a valid XML-RPC method call";

/** What a method handler knows about the call besides its arguments. */
export interface CallContext {
  /** The XML-RPC method name. */
  readonly method: string;
  /**
   * Where the request came from. Undefined inside `system.multicall`, whose calls are not
   * tied to one request.
   */
  readonly remoteAddr: { readonly hostname: string; readonly port: number } | undefined;
}

/**
 * Handles one XML-RPC method. Throw `XmlRpcFault` (with a code) for a refusal; anything else
 * becomes a fault with code -32500 and the error's message, never its stack.
 */
export type MethodHandler = (
  args: XmlRpcValue[],
  context: CallContext,
) => XmlRpcValue | Promise<XmlRpcValue>;

/** Handles a non-XML-RPC HTTP route (any method) on the same port, such as `/announce`. */
export type RouteHandler = (
  request: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
) => Response | Promise<Response>;

/** Options for {@linkcode XmlRpcHttpServer}. */
export interface XmlRpcHttpServerOptions {
  /** XML-RPC methods by name. */
  methods: Record<string, MethodHandler>;
  /**
   * Extra HTTP routes by exact path (e.g. `"/announce"`, `"/scrape"`), tried before XML-RPC.
   * Paths in {@linkcode RPC_PATHS} cannot be taken over.
   */
  routes?: Record<string, RouteHandler>;
  /** Text for `GET /` (default: a one-line description). */
  statusPage?: () => string;
  /** Largest request body accepted, in bytes (default {@linkcode MAX_BODY_BYTES}). */
  maxBodyBytes?: number;
  /** Told about unexpected errors in handlers and routes (default: ignore). */
  onError?: (error: unknown, where: string) => void;
}

/** The address a running server listens on. */
export interface ListenAddress {
  /** Host name or IP as given to `listen`. */
  readonly hostname: string;
  /** The bound port (useful after listening on port 0). */
  readonly port: number;
}

/**
 * An XML-RPC server with checked requests and typed method handlers; see the module
 * documentation.
 */
export class XmlRpcHttpServer {
  readonly #options: XmlRpcHttpServerOptions;
  readonly #maxBody: number;
  /** A Map, so that names such as "constructor" or "__proto__" find nothing. */
  readonly #methods: Map<string, MethodHandler>;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #address: ListenAddress | undefined;
  #shutdown: Promise<void> | undefined;

  /** Registers the methods; call {@linkcode XmlRpcHttpServer.listen} to start. */
  constructor(options: XmlRpcHttpServerOptions) {
    this.#options = options;
    this.#maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
    this.#methods = new Map(Object.entries(options.methods));
  }

  /**
   * Starts listening (port 0 picks a free port). A port already in use or an address that
   * cannot be bound becomes a one-sentence {@linkcode FatalError}.
   */
  listen(port = 0, hostname = "localhost"): Promise<void> {
    if (this.#server) return Promise.reject(new Error("the server is already listening"));
    try {
      this.#server = Deno.serve(
        { port, hostname, onListen: () => {} },
        (request, info) => this.#serve(request, info),
      );
    } catch (e) {
      return Promise.reject(listenError(e, hostname, port));
    }
    this.#address = { hostname, port: this.#server.addr.port };
    return Promise.resolve();
  }

  /** `http://host:port/`; throws before {@linkcode XmlRpcHttpServer.listen}. */
  get url(): string {
    const a = this.#listening();
    return `http://${a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname}:${a.port}/`;
  }

  /** The bound port; throws before {@linkcode XmlRpcHttpServer.listen}. */
  get port(): number {
    return this.#listening().port;
  }

  /** Where the server listens; undefined before {@linkcode XmlRpcHttpServer.listen}. */
  get address(): ListenAddress | undefined {
    return this.#address;
  }

  /** Stops the server and waits until open requests are answered. Safe to call twice. */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#server ? this.#server.shutdown() : Promise.resolve();
    return this.#shutdown;
  }

  /**
   * Answers one HTTP request as if it had arrived from `remoteAddr`, without listening: the same
   * path a real request takes (routes, body cap, parsing, faults), for in-process tests and
   * fuzzing.
   */
  handle(request: Request, remoteAddr: Deno.NetAddr): Promise<Response> {
    return this.#serve(request, { remoteAddr, completed: Promise.resolve() });
  }

  /** Same as {@linkcode XmlRpcHttpServer.shutdown}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  #listening(): ListenAddress {
    if (!this.#address) throw new Error("the server is not listening yet");
    return this.#address;
  }

  async #serve(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> {
    const path = pathOf(request.url);
    const route = RPC_PATHS.includes(path) ? undefined : this.#options.routes?.[path];
    if (route) {
      try {
        return await route(request, info);
      } catch (e) {
        this.#options.onError?.(e, `${request.method} ${path}`);
        return text(500, "internal server error\n");
      }
    }
    if (!RPC_PATHS.includes(path)) return text(404, `no such path: ${path}\n`);
    if (request.method === "POST") return await this.#rpc(request, info);
    if (path === "/" && (request.method === "GET" || request.method === "HEAD")) {
      const page = this.#options.statusPage?.() ??
        "XML-RPC server: POST method calls to / or /RPC2\n";
      return text(200, page);
    }
    return text(405, `${request.method} is not allowed here; XML-RPC calls use POST\n`, {
      Allow: path === "/" ? "GET, HEAD, POST" : "POST",
    });
  }

  async #rpc(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> {
    const limit = this.#maxBody;
    const tooLarge = () =>
      fault(413, FaultCode.badRequest, `the request body is larger than ${limit} bytes`);
    // Refuse early on the declared length; readBodyLimited still caps bodies that lie or stream.
    const declared = Number(request.headers.get("content-length") ?? "0");
    if (declared > limit) return tooLarge();
    let body: string;
    try {
      // A declared length frames the body exactly, so it can be read whole (much cheaper than
      // reading the stream chunk by chunk); without one, the reader enforces the limit.
      body = request.headers.has("content-length")
        ? await request.text()
        : await readBodyLimited(request.body, limit);
    } catch (e) {
      if (e instanceof BodyTooLargeError) return tooLarge();
      return fault(400, FaultCode.badRequest, "the request body could not be read");
    }
    // A Request built in-process (handle) is not framed by its Content-Length header.
    if (body.length > limit) return tooLarge();
    let methodName: string;
    let params: XmlRpcValue[];
    try {
      ({ methodName, params } = parseMethodCall(body, { maxLength: limit }));
    } catch (e) {
      if (!(e instanceof XmlRpcParseError)) throw e;
      return fault(200, FaultCode.badRequest, `${NOT_A_CALL}: ${e.message}`);
    }
    const remoteAddr = {
      hostname: unmapIPv4(info.remoteAddr.hostname),
      port: info.remoteAddr.port,
    };
    let result: XmlRpcValue | XmlRpcFault;
    if (methodName === MULTICALL) {
      result = await this.#multicall(params);
    } else {
      result = await this.#call(methodName, params, remoteAddr);
    }
    if (result instanceof XmlRpcFault) return fault(200, result.faultCode, result.faultString);
    let answer: string;
    try {
      answer = serializeMethodResponse(result);
    } catch (e) {
      // A handler returned what XML-RPC cannot carry (NaN, a function…): our bug, not theirs.
      this.#options.onError?.(e, methodName);
      const why = e instanceof Error ? e.message : String(e);
      return fault(200, XmlRpcError.application, `internal error in ${shown(methodName)}: ${why}`);
    }
    return new Response(answer, { status: 200, headers: XML_HEADERS });
  }

  /** Runs one method; every failure comes back as a fault. */
  async #call(
    name: string,
    args: XmlRpcValue,
    remoteAddr: CallContext["remoteAddr"],
  ): Promise<XmlRpcValue | XmlRpcFault> {
    if (name === LIST_METHODS) return [...this.#methods.keys(), LIST_METHODS, MULTICALL].sort();
    const handler = this.#methods.get(name);
    if (handler === undefined) {
      return new XmlRpcFault(XmlRpcError.notFound, `Method "${shown(name)}" not found`);
    }
    if (!Array.isArray(args)) {
      // A system.multicall entry's `params` may hold anything, or be missing.
      return new XmlRpcFault(XmlRpcError.invalidParams, `${name}: params must be an array`);
    }
    try {
      return await handler(args, { method: name, remoteAddr });
    } catch (e) {
      if (e instanceof XmlRpcFault) return e;
      // Callers get one line; the operator gets the error itself.
      this.#options.onError?.(e, name);
      const why = e instanceof Error ? e.message : String(e);
      return new XmlRpcFault(XmlRpcError.application, `internal error in ${name}: ${why}`);
    }
  }

  /**
   * `system.multicall([{methodName, params}, …])`: runs every call and answers with one array,
   * `[result]` for a success and `{faultCode, faultString}` for a fault, in order
   * (https://mirrors.talideon.com/articles/multicall.html). Calls inside it have no caller
   * address, and cannot be multicalls themselves.
   */
  async #multicall(params: XmlRpcValue[]): Promise<XmlRpcValue | XmlRpcFault> {
    const calls = params[0];
    if (params.length !== 1 || !Array.isArray(calls)) {
      return new XmlRpcFault(
        XmlRpcError.invalidParams,
        `${MULTICALL} takes one argument, an array of calls`,
      );
    }
    for (const c of calls) {
      if (!isStruct(c)) {
        return new XmlRpcFault(
          FaultCode.badRequest,
          `${MULTICALL}: every call must be a struct of methodName and params`,
        );
      }
    }
    const results = await Promise.all(calls.map((c) => {
      const { methodName, params } = c as Record<string, XmlRpcValue>;
      if (typeof methodName !== "string") {
        return new XmlRpcFault(XmlRpcError.invalidParams, `${MULTICALL}: a methodName is missing`);
      }
      if (methodName === MULTICALL) {
        return new XmlRpcFault(XmlRpcError.invalidParams, `${MULTICALL} cannot be nested`);
      }
      return this.#call(methodName, params, undefined);
    }));
    return results.map((r) =>
      r instanceof XmlRpcFault ? { faultCode: r.faultCode, faultString: r.faultString } : [r]
    );
  }
}

const XML_HEADERS = { "Content-Type": "text/xml; charset=utf-8" };

function isStruct(v: XmlRpcValue): boolean {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date) &&
    !(v instanceof Uint8Array);
}

/**
 * A method name as quoted back in a fault: printable ASCII only and not too long, since the name
 * is whatever the caller sent.
 */
function shown(name: string): string {
  return name.slice(0, 100).replace(/[^\x20-\x7e]/g, "?").replaceAll("]]>", "]]?");
}

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) is just `1.2.3.4` to other peers. */
function unmapIPv4(host: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m ? m[1] : host;
}

/**
 * The path of an absolute request URL. A path of plain characters is cut out of the URL as it is
 * (what a URL parser would return for it, at a fraction of the cost); anything else is parsed.
 */
function pathOf(url: string): string {
  const scheme = url.indexOf("://");
  const start = scheme < 0 ? -1 : url.indexOf("/", scheme + 3);
  if (start >= 0 && !/[?#]/.test(url.slice(scheme + 3, start))) {
    let end = url.length;
    for (const c of ["?", "#"]) {
      const at = url.indexOf(c, start);
      if (at >= 0 && at < end) end = at;
    }
    const path = url.slice(start, end);
    if (/^[A-Za-z0-9/_-]*$/.test(path)) return path;
  }
  return new URL(url).pathname;
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "Content-Type": "text/plain; charset=utf-8", ...headers },
  });
}

function fault(status: number, code: number, message: string): Response {
  return new Response(serializeFault(code, message), { status, headers: XML_HEADERS });
}

function listenError(e: unknown, hostname: string, port: number): Error {
  if (e instanceof Deno.errors.AddrInUse) {
    return new FatalError(
      `port ${port} is already in use on ${hostname}; stop the other program or choose another port`,
      { cause: e },
    );
  }
  if (e instanceof Deno.errors.AddrNotAvailable) {
    return new FatalError(`address ${hostname} is not available on this machine`, { cause: e });
  }
  const why = e instanceof Error ? e.message : String(e);
  return new FatalError(`cannot listen on ${hostname}:${port}: ${why}`, { cause: e });
}
