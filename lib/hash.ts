/**
 * SHA-1, the hash BEP 3 uses for pieces and the info-hash. Web Crypto runs the digest off the
 * JavaScript thread, so a peer keeps serving its sockets while a piece is checked.
 *
 * @example
 * ```ts
 * import { sha1, toHex } from "./hash.ts";
 * toHex(await sha1(new TextEncoder().encode("abc"))); // "a9993e36..."
 * ```
 * @module
 */

import { createHash } from "node:crypto";

/** The SHA-1 digest of `data`, 20 bytes. */
export async function sha1(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-1", data as Uint8Array<ArrayBuffer>));
}

/**
 * The SHA-1 digest of `data`, computed in place on this thread. Unlike {@linkcode sha1} it does
 * not copy its input first, which matters for mebibyte pieces.
 */
export function sha1Sync(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(data).digest());
}

/** True when two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lower-case hexadecimal of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX[b];
  return s;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** Parses lower- or upper-case hexadecimal; throws on odd length or a non-hex digit. */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  let bad = hex.length % 2 !== 0;
  for (let i = 0; i < out.length && !bad; i++) {
    const hi = hexDigit(hex.charCodeAt(2 * i));
    const lo = hexDigit(hex.charCodeAt(2 * i + 1));
    bad = hi < 0 || lo < 0;
    out[i] = (hi << 4) | lo;
  }
  if (bad) throw new TypeError(`not a hexadecimal string: ${hex.slice(0, 16)}`);
  return out;
}

/** The value of a hexadecimal digit's character code, or -1 for any other character. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20; // lower-cases a letter
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}
