/**
 * What the XML-RPC server and the tracker client share besides the format itself: reading an
 * HTTP body with a size cap, so that a huge or endless body costs no more than the cap.
 *
 * @example
 * ```ts
 * import { readBodyLimited } from "./xmlrpc_common.ts";
 * const text = await readBodyLimited(new Response("<x/>").body, 65536); // "<x/>"
 * ```
 * @module
 */

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
