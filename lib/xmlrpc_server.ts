/**
 * An XML-RPC server on `Deno.serve`: `@foxglove/xmlrpc` parses calls and writes responses, and
 * this module supplies its HTTP layer, so the tracker needs only `--allow-net`.
 *
 * On top of the library it adds what a server facing the network needs: a 64 KiB cap on request
 * bodies, refusal of `<!DOCTYPE`/`<!ENTITY` (entity tricks) and of any other `<!` declaration,
 * faults with a code and a clear message for every handler error (the library would put a stack
 * trace in the fault), the caller's address for each method, a plain-text status page on `GET /`,
 * and extra routes on the same port (for a later `GET /announce`).
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

import {
  type HttpHandler,
  type HttpRequest,
  type HttpResponse,
  type HttpServer,
  serializeFault,
  XmlRpcError,
  XmlRpcFault,
  type XmlRpcMethodHandler,
  XmlRpcServer,
  type XmlRpcValue,
} from "@foxglove/xmlrpc";
import { FatalError } from "./cli.ts";
import { FaultCode } from "./tracker_api.ts";
import { BodyTooLargeError, readBodyLimited, toWireValue } from "./xmlrpc_common.ts";

/** Default cap on an XML-RPC request body: 64 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Any `<!` but a comment or CDATA: a `DOCTYPE` or `ENTITY` (entity expansion tricks), and every
 * other declaration, which XML-RPC never needs and which sax scans in quadratic time while it
 * stays unterminated (`<!` and 60 KB without a `>` took the tracker half a minute).
 */
const DECLARATION = /<!(?!--|\[CDATA\[)/;

/** Paths that answer XML-RPC `POST`s. */
export const RPC_PATHS: readonly string[] = ["/", "/RPC2"];

/** What a method handler knows about the call besides its arguments. */
export interface CallContext {
  /** The XML-RPC method name. */
  readonly method: string;
  /**
   * Where the request came from. Undefined inside `system.multicall`, which the library runs
   * without the HTTP request.
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
 * The `HttpServer` that `@foxglove/xmlrpc`'s `XmlRpcServer` drives, implemented on
 * `Deno.serve`. `XmlRpcServer` installs its request handler in {@linkcode DenoHttpServer.handler};
 * this class reads and checks the HTTP request around it.
 */
export class DenoHttpServer implements HttpServer {
  /** The XML-RPC request handler; `XmlRpcServer`'s constructor replaces this placeholder. */
  handler: HttpHandler = () => Promise.resolve({ statusCode: 503 });
  readonly #options: XmlRpcHttpServerOptions;
  readonly #maxBody: number;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #address: ListenAddress | undefined;
  #shutdown: Promise<void> | undefined;

  /** Builds the adapter; nothing listens until {@linkcode DenoHttpServer.listen}. */
  constructor(options: XmlRpcHttpServerOptions) {
    this.#options = options;
    this.#maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
  }

  /** `http://host:port/` once listening. */
  url(): string | undefined {
    if (!this.#address) return undefined;
    const h = this.#address.hostname;
    return `http://${h.includes(":") ? `[${h}]` : h}:${this.#address.port}/`;
  }

  /** The bound port once listening. */
  port(): number | undefined {
    return this.#address?.port;
  }

  /** Where the server listens, once it does. */
  get address(): ListenAddress | undefined {
    return this.#address;
  }

  /**
   * Starts listening (port 0 picks a free port). A port already in use or an address that
   * cannot be bound becomes a one-sentence {@linkcode FatalError}.
   */
  listen(port = 0, hostname = "localhost", _backlog?: number): Promise<void> {
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

  /** Stops accepting connections; {@linkcode DenoHttpServer.shutdown} to wait for it. */
  close(): void {
    void this.shutdown();
  }

  /** Stops the server and waits until open requests are answered. Safe to call twice. */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#server ? this.#server.shutdown() : Promise.resolve();
    return this.#shutdown;
  }

  /**
   * Answers one request exactly as the listening server would, without a socket, so tests and
   * the fuzzer can drive the whole request path (routes, body cap, DOCTYPE refusal, parsing,
   * faults) in-process.
   */
  handle(request: Request, remoteAddr: Deno.NetAddr): Promise<Response> {
    return this.#serve(request, { remoteAddr, completed: Promise.resolve() });
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
    if (DECLARATION.test(body)) {
      return fault(
        200,
        FaultCode.badRequest,
        "document type, entity and other <! declarations are not accepted",
      );
    }
    const req: HttpRequest = {
      body,
      method: request.method,
      url: request.url,
      socket: { remoteAddress: info.remoteAddr.hostname, remotePort: info.remoteAddr.port },
    };
    let res: HttpResponse;
    try {
      res = await this.handler(req);
    } catch {
      // Our handlers never throw (wrapCall turns everything into a fault), so this is the library
      // choking on the call itself, e.g. a system.multicall entry that is not a struct.
      return fault(
        200,
        FaultCode.badRequest,
        "the request body is not a valid XML-RPC method call",
      );
    }
    if (res.statusCode === 500 && res.body === undefined) {
      // The library answers unparsable calls with a bare HTTP 500; a fault says more.
      return fault(
        200,
        FaultCode.badRequest,
        "the request body is not a valid XML-RPC method call",
      );
    }
    const headers = new Headers({ "Content-Type": "text/xml; charset=utf-8" });
    return new Response(res.body ?? "", { status: res.statusCode, headers });
  }
}

/**
 * An XML-RPC server with checked requests and typed method handlers; see the module
 * documentation.
 */
export class XmlRpcHttpServer {
  readonly #http: DenoHttpServer;
  readonly #rpc: XmlRpcServer;

  /** Registers the methods; call {@linkcode XmlRpcHttpServer.listen} to start. */
  constructor(options: XmlRpcHttpServerOptions) {
    this.#http = new DenoHttpServer(options);
    this.#rpc = new XmlRpcServer(this.#http);
    this.#rpc.xmlRpcHandlers = new MethodTable();
    for (const [name, handler] of Object.entries(options.methods)) {
      this.#rpc.setHandler(name, (_name, args, req) => wrapCall(name, handler, args, req, options));
    }
  }

  /** Starts listening; throws {@linkcode FatalError} when the port is taken. */
  async listen(port: number, hostname = "localhost"): Promise<void> {
    await this.#http.listen(port, hostname);
  }

  /** `http://host:port/`; throws before {@linkcode XmlRpcHttpServer.listen}. */
  get url(): string {
    const url = this.#http.url();
    if (url === undefined) throw new Error("the server is not listening yet");
    return url;
  }

  /** The bound port; throws before {@linkcode XmlRpcHttpServer.listen}. */
  get port(): number {
    const port = this.#http.port();
    if (port === undefined) throw new Error("the server is not listening yet");
    return port;
  }

  /** Stops the server and waits for open requests. */
  shutdown(): Promise<void> {
    return this.#http.shutdown();
  }

  /**
   * Answers one HTTP request as if it had arrived from `remoteAddr`, without listening: the same
   * path a real request takes, for in-process tests and fuzzing.
   */
  handle(request: Request, remoteAddr: Deno.NetAddr): Promise<Response> {
    return this.#http.handle(request, remoteAddr);
  }

  /** Same as {@linkcode XmlRpcHttpServer.shutdown}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

/**
 * The library's method table, which it reads with `get`. An unknown name gets a handler that
 * answers "not found" quoting the name safely: the library's own fault would quote it as sent,
 * and a name holding `]]>` or a control character cannot be written back as XML, so the answer
 * would fail.
 */
class MethodTable extends Map<string, XmlRpcMethodHandler> {
  override get(name: string): XmlRpcMethodHandler {
    return super.get(name) ?? (() => {
      const shown = String(name).slice(0, 100).replace(/[^\x20-\x7e]/g, "?").replaceAll(
        "]]>",
        "]]?",
      );
      throw new XmlRpcFault(`Method "${shown}" not found`, XmlRpcError.NOT_FOUND_ERROR);
    });
  }
}

async function wrapCall(
  name: string,
  handler: MethodHandler,
  args: XmlRpcValue[],
  req: HttpRequest | undefined,
  options: XmlRpcHttpServerOptions,
): Promise<XmlRpcValue> {
  const host = req?.socket?.remoteAddress;
  const port = req?.socket?.remotePort;
  if (!Array.isArray(args)) {
    // system.multicall passes on whatever an entry's `params` held, or nothing at all.
    throw new XmlRpcFault(`${name}: params must be an array`, XmlRpcError.INVALID_PARAMS_ERROR);
  }
  const remoteAddr = host !== undefined && port !== undefined
    ? { hostname: unmapIPv4(host), port }
    : undefined;
  try {
    return toWireValue(await handler(args, { method: name, remoteAddr }));
  } catch (e) {
    if (e instanceof XmlRpcFault) throw e;
    // The library would send `err.stack`; callers get one line and the operator gets the error.
    options.onError?.(e, name);
    const why = e instanceof Error ? e.message : String(e);
    throw new XmlRpcFault(`internal error in ${name}: ${why}`, XmlRpcError.APPLICATION_ERROR);
  }
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
  return new Response(serializeFault(new XmlRpcFault(message, code)), {
    status,
    headers: { "Content-Type": "text/xml; charset=utf-8" },
  });
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
