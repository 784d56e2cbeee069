/**
 * Small pieces shared by the XML-RPC server adapter and the tracker client: reading an HTTP
 * body with a size cap, and making binary values travel as XML-RPC `base64`.
 *
 * @example
 * ```ts
 * import { readBodyLimited, toWireValue } from "./xmlrpc_common.ts";
 * const text = await readBodyLimited(new Response("<x/>").body, 65536); // "<x/>"
 * toWireValue({ bits: new Uint8Array([0x80]) }); // { bits: Buffer [0x80] }, sent as base64
 * ```
 * @module
 */

import { Buffer } from "node:buffer";
import type { XmlRpcValue } from "@foxglove/xmlrpc";

/** Thrown by {@linkcode readBodyLimited} when a body is larger than allowed. */
export class BodyTooLargeError extends Error {
  /** Builds the error. */
  constructor(readonly limit: number) {
    super(`the body is larger than ${limit} bytes`);
    this.name = "BodyTooLargeError";
  }
}

/**
 * Reads a whole body as UTF-8 text, but never more than `limit` bytes: past that it cancels the
 * stream and throws {@linkcode BodyTooLargeError}, so a huge body costs no more than `limit`.
 */
export async function readBodyLimited(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
): Promise<string> {
  if (body === null) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw new BodyTooLargeError(limit);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(all);
}

/**
 * Prepares a value for `@foxglove/xmlrpc`'s serializer, which only writes `base64` for Node
 * `Buffer`s and would turn a plain `Uint8Array` into a struct of numbered members. Walks arrays
 * and structs; everything else is passed through.
 */
export function toWireValue(value: XmlRpcValue): XmlRpcValue {
  if (value instanceof Uint8Array) {
    return Buffer.isBuffer(value)
      ? value
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) return value.map(toWireValue);
  if (value !== null && typeof value === "object" && !(value instanceof Date)) {
    const out: Record<string, XmlRpcValue> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toWireValue(v);
    return out;
  }
  return value;
}
