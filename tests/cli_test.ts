/**
 * Tests for `lib/cli.ts`'s option parsing: what parses, and that every parse failure is a
 * {@linkcode UsageError} with a short sentence (which `main` turns into the usage and exit 2).
 *
 * @module
 */

import { parseOptions, UsageError } from "../lib/cli.ts";
import { assertEquals, assertThrows } from "./assert.ts";

const options = {
  size: { type: "string", default: "64MiB" },
  quiet: { type: "boolean", default: false },
} as const;

Deno.test("cli: parseOptions returns the values, defaults filled in", () => {
  const { values } = parseOptions({ args: ["--quiet"], strict: true, options });
  assertEquals(values, { size: "64MiB", quiet: true });
});

Deno.test("cli: parseOptions turns every parse failure into a short UsageError", () => {
  const cases: [string[], string][] = [
    [["--sise", "1"], "unknown option --sise"],
    [["--size"], "option --size needs a value"],
    [["stray"], "unexpected argument stray"],
  ];
  for (const [args, message] of cases) {
    const e = assertThrows(() => parseOptions({ args, strict: true, options }), UsageError);
    assertEquals(e.message, message, args.join(" "));
  }
});
