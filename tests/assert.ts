/**
 * Tiny assertion helpers for the tests, since `@std/assert` is not reachable here: truthiness,
 * structural deep equality (typed arrays compared element by element), and expected throws and
 * rejections checked by error class and message.
 *
 * @example
 * ```ts
 * import { assert, assertEquals, assertRejects, assertThrows } from "./assert.ts";
 * assert(1 + 1 === 2);
 * assertEquals({ a: new Uint8Array([1, 2]) }, { a: new Uint8Array([1, 2]) });
 * assertThrows(() => JSON.parse("{"), SyntaxError);
 * await assertRejects(() => Deno.readFile("/no/such/file"), Deno.errors.NotFound);
 * ```
 * @module
 */

// Every test module imports this one, so this check runs first: the tests spawn the real
// tracker and peers and write real files, which `deno test --allow-net` alone does not allow.
const needed = ["net", "read", "write", "run", "env"] as const;
const missing = needed.filter((name) => Deno.permissions.querySync({ name }).state !== "granted");
if (missing.length > 0) {
  throw new Error(
    `the tests also need --allow-${missing.join(", --allow-")}: run \`deno task test\` ` +
      "(deno test -P, which grants the permissions listed in deno.json)",
  );
}

/** Raised by every helper here when an assertion does not hold. */
export class AssertionError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AssertionError";
  }
}

/** A constructor of errors, such as `TypeError` or `BencodeError`. */
// deno-lint-ignore no-explicit-any
export type ErrorClass<E extends Error = Error> = abstract new (...args: any[]) => E;

/** Throws {@linkcode AssertionError} unless `condition` is truthy. */
export function assert(condition: unknown, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Throws {@linkcode AssertionError} with `message`: for branches that must not be reached. */
export function fail(message = "failed"): never {
  throw new AssertionError(message);
}

/**
 * Throws {@linkcode AssertionError} unless `actual` and `expected` are structurally equal: same
 * primitive values (`Object.is`, so `NaN` equals `NaN`), same array and typed-array elements, same
 * own enumerable keys with equal values, equal `Map`s, `Set`s and `Date`s, same prototype (a
 * null-prototype dictionary counts as a plain object).
 */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  const where = diff(actual, expected, "$", new Map());
  if (where !== undefined) {
    throw new AssertionError(
      `${message ? message + ": " : ""}values differ at ${where}\n` +
        `  actual:   ${show(actual)}\n  expected: ${show(expected)}`,
    );
  }
}

/** Throws {@linkcode AssertionError} if `actual` and `expected` are structurally equal. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  if (diff(actual, expected, "$", new Map()) === undefined) {
    throw new AssertionError(
      `${message ? message + ": " : ""}expected values to differ: ${show(actual)}`,
    );
  }
}

/** Throws {@linkcode AssertionError} unless `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, message?: string): void {
  if (!text.includes(part)) {
    throw new AssertionError(
      `${message ? message + ": " : ""}expected ${show(text)} to include ${show(part)}`,
    );
  }
}

/**
 * Calls `fn` and returns what it threw; throws {@linkcode AssertionError} if it returned normally,
 * threw something other than an instance of `ErrorClass`, or a message not containing
 * `msgIncludes`.
 */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  try {
    fn();
  } catch (e) {
    checkError(e, ErrorClass, msgIncludes);
    return e as E;
  }
  throw new AssertionError(
    `expected a throw${ErrorClass ? ` of ${ErrorClass.name}` : ""}, but none came`,
  );
}

/**
 * Awaits `fn()` and returns the rejection; throws {@linkcode AssertionError} if it resolved,
 * rejected with something other than an instance of `ErrorClass`, or a message not containing
 * `msgIncludes`. A synchronous throw from `fn` counts as a rejection.
 */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    checkError(e, ErrorClass, msgIncludes);
    return e as E;
  }
  throw new AssertionError(
    `expected a rejection${ErrorClass ? ` with ${ErrorClass.name}` : ""}, but it resolved`,
  );
}

function checkError(e: unknown, ErrorClass?: ErrorClass, msgIncludes?: string): void {
  if (ErrorClass && !(e instanceof ErrorClass)) {
    throw new AssertionError(
      `expected ${ErrorClass.name}, got ${
        e instanceof Error ? `${e.name}: ${e.message}` : show(e)
      }`,
      { cause: e },
    );
  }
  if (msgIncludes !== undefined) {
    const msg = e instanceof Error ? e.message : String(e);
    if (!msg.includes(msgIncludes)) {
      throw new AssertionError(
        `expected the error message to include ${show(msgIncludes)}, got ${show(msg)}`,
        { cause: e },
      );
    }
  }
}

/** The path of the first difference between `a` and `b`, or undefined when they are equal. */
function diff(a: unknown, b: unknown, path: string, seen: Map<object, object>): string | undefined {
  if (Object.is(a, b)) return undefined;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return path;
  if (!samePrototype(a, b)) return `${path} (type)`;
  // Cycles: a pair already being compared is assumed equal, as deep-equal libraries do.
  if (seen.get(a) === b) return undefined;
  seen.set(a, b);
  if (ArrayBuffer.isView(a) && !(a instanceof DataView)) {
    const x = a as unknown as ArrayLike<unknown>;
    const y = b as unknown as ArrayLike<unknown>;
    if (x.length !== y.length) return `${path}.length (${x.length} vs ${y.length})`;
    for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return `${path}[${i}]`;
    return undefined;
  }
  if (a instanceof DataView || a instanceof ArrayBuffer) {
    const x = a instanceof DataView
      ? new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
      : new Uint8Array(a);
    const y = b instanceof DataView
      ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
      : new Uint8Array(b as ArrayBuffer);
    return diff(x, y, path, seen);
  }
  if (a instanceof Date) return a.getTime() === (b as Date).getTime() ? undefined : path;
  if (a instanceof RegExp) return String(a) === String(b) ? undefined : path;
  if (a instanceof Map) {
    const m = b as Map<unknown, unknown>;
    if (a.size !== m.size) return `${path}.size`;
    for (const [k, v] of a) {
      if (!m.has(k)) return `${path}.get(${show(k)})`;
      const d = diff(v, m.get(k), `${path}.get(${show(k)})`, seen);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (a instanceof Set) {
    const s = b as Set<unknown>;
    if (a.size !== s.size) return `${path}.size`;
    for (const v of a) if (!s.has(v)) return `${path} (set member ${show(v)})`;
    return undefined;
  }
  if (a instanceof Error && a.message !== (b as Error).message) return `${path}.message`;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (Array.isArray(a) && a.length !== (b as unknown[]).length) {
    return `${path}.length (${a.length} vs ${(b as unknown[]).length})`;
  }
  if (ka.length !== kb.length) return `${path} (keys ${show(ka)} vs ${show(kb)})`;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return `${path}.${k} (missing)`;
    const d = diff(
      (a as Record<string, unknown>)[k],
      (b as Record<string, unknown>)[k],
      `${path}.${k}`,
      seen,
    );
    if (d !== undefined) return d;
  }
  return undefined;
}

/** Same prototype, counting `Object.create(null)` dictionaries as plain objects. */
function samePrototype(a: object, b: object): boolean {
  const plain = (p: unknown) => p === null || p === Object.prototype;
  const pa = Object.getPrototypeOf(a);
  const pb = Object.getPrototypeOf(b);
  return pa === pb || (plain(pa) && plain(pb));
}

function show(v: unknown): string {
  const s = Deno.inspect(v, { depth: 4, colors: false, compact: true, breakLength: Infinity });
  return s.length > 300 ? s.slice(0, 300) + "…" : s;
}
