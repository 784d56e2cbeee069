/**
 * The tracker's XML-RPC methods ({@linkcode Methods}) bound to a {@linkcode Registry}: each
 * handler checks its untrusted arguments, calls the registry, and turns a
 * {@linkcode RegistryError} into an XML-RPC fault with the same code and message.
 *
 * @example
 * ```ts
 * import { Registry } from "./registry.ts";
 * import { trackerMethods } from "./tracker_methods.ts";
 * import { XmlRpcHttpServer } from "./xmlrpc_server.ts";
 * const server = new XmlRpcHttpServer({ methods: trackerMethods(new Registry()) });
 * await server.listen(8000);
 * ```
 * @module
 */

import { type Registry, RegistryError } from "./registry.ts";
import { FaultCode, Methods, type Role } from "./tracker_api.ts";
import type { CallContext, MethodHandler } from "./xmlrpc_server.ts";
import { XmlRpcFault, type XmlRpcValue } from "./xmlrpc.ts";

/** Handlers for every method in {@linkcode Methods}, keyed by XML-RPC name. */
export function trackerMethods(registry: Registry): Record<string, MethodHandler> {
  return {
    [Methods.register]: guard((args, ctx) => {
      arity(Methods.register, args, 1);
      const p = struct(args[0], "the registration");
      if (!ctx.remoteAddr) {
        throw new XmlRpcFault(
          FaultCode.badRequest,
          `${Methods.register} cannot be called inside system.multicall`,
        );
      }
      const role = string(p.role, "role");
      return {
        ...registry.register(
          {
            host: string(p.host, "host"),
            port: integer(p.port, "port"),
            peerId: string(p.peerId, "peerId"),
            role: role as Role, // the registry checks the value
          },
          ctx.remoteAddr.hostname,
        ),
      };
    }),
    [Methods.publish]: guard(async (args) => {
      arity(Methods.publish, args, 2);
      return { ...await registry.publish(string(args[0], "token"), bytes(args[1], "info")) };
    }),
    [Methods.getMetainfo]: guard((args) => {
      arity(Methods.getMetainfo, args, 0);
      return { ...registry.getMetainfo() };
    }),
    [Methods.reportProgress]: guard((args) => {
      arity(Methods.reportProgress, args, 4);
      return {
        ...registry.reportProgress(
          string(args[0], "token"),
          bytes(args[1], "bitfield"),
          count(args[2], "uploaded"),
          count(args[3], "downloaded"),
        ),
      };
    }),
    [Methods.listPeers]: guard((args) => {
      arity(Methods.listPeers, args, 1);
      return registry.listPeers(string(args[0], "token")).map((p) => ({ ...p }));
    }),
    [Methods.leave]: guard((args) => {
      arity(Methods.leave, args, 1);
      registry.leave(string(args[0], "token"));
      return true;
    }),
  };
}

/** Turns registry refusals into faults carrying their code. */
function guard(
  handler: (args: XmlRpcValue[], ctx: CallContext) => XmlRpcValue | Promise<XmlRpcValue>,
): MethodHandler {
  return async (args, ctx) => {
    try {
      return await handler(args, ctx);
    } catch (e) {
      if (e instanceof RegistryError) throw new XmlRpcFault(e.code, e.message);
      throw e;
    }
  };
}

function bad(message: string): XmlRpcFault {
  return new XmlRpcFault(FaultCode.badParams, message);
}

function arity(method: string, args: XmlRpcValue[], n: number): void {
  if (args.length !== n) {
    throw bad(`${method} takes ${n} argument${n === 1 ? "" : "s"}, not ${args.length}`);
  }
}

function struct(v: XmlRpcValue, what: string): Record<string, XmlRpcValue> {
  if (
    v === undefined || v === null || typeof v !== "object" || Array.isArray(v) ||
    v instanceof Date || v instanceof Uint8Array
  ) {
    throw bad(`${what} must be a struct`);
  }
  return v;
}

function string(v: XmlRpcValue, what: string): string {
  if (typeof v !== "string") throw bad(`${what} must be a string`);
  return v;
}

function integer(v: XmlRpcValue, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw bad(`${what} must be an integer`);
  return v;
}

/** A byte count: `int`, `double` or `i8`, whole and at most 2^53 - 1. */
function count(v: XmlRpcValue, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw bad(`${what} must be a whole number of bytes`);
  }
  return v;
}

function bytes(v: XmlRpcValue, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(`${what} must be base64`);
  return v; // the parser made it for this call alone
}
