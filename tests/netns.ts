/**
 * Network namespaces for the tests that need real hosts rather than 127.0.0.1: a single
 * namespace joined to ours by a veth pair ({@linkcode Netns}, for a client that refuses loopback
 * peers), and a switched LAN of namespaces ({@linkcode Lan}: one namespace per host, a bridge in
 * a namespace of its own, a veth "cable" from each host to it) whose cables can be cut and
 * restored. Both need root and `ip` (iproute2); a missing one fails the test with a sentence
 * naming it, never skips it.
 *
 * Names carry a random tag, so concurrent runs and runs that died without cleaning up do not
 * collide; every `close()` deletes what its `create()` made and never throws.
 *
 * @example
 * ```ts
 * import { Lan } from "./netns.ts";
 * const lan = await Lan.create(["a", "b"]);
 * try {
 *   console.log(await lan.exec("a", ["ip", "-br", "addr"]));
 * } finally {
 *   await lan.close();
 * }
 * ```
 * @module
 */

import { AssertionError } from "./assert.ts";

/** Runs `cmd args…`; resolves with its stdout, rejects with its stderr when it fails. */
export async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${dec.decode(out.stderr).trim()}`);
  }
  return dec.decode(out.stdout);
}

/** Runs a command for its side effect, ignoring failure (clean-up paths). */
async function tryRun(cmd: string, args: string[]): Promise<void> {
  await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output().catch(() => {});
}

/** Fails (not skips) when `program` is missing, naming the Debian package that provides it. */
export async function requireProgram(program: string, pkg: string): Promise<void> {
  const found = await new Deno.Command("sh", {
    args: ["-c", `command -v ${program}`],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!found.success) {
    throw new AssertionError(`${program} is not installed: apt-get install ${pkg}`);
  }
}

/** Fails (not skips) unless this process runs as root, which namespaces need. */
export async function requireRoot(why: string): Promise<void> {
  const uid = (await run("id", ["-u"])).trim();
  if (uid !== "0") {
    throw new AssertionError(
      `${why} needs root (uid 0, this is uid ${uid}): run it as root, as CI does`,
    );
  }
}

/** A short random tag for names that must not collide with another run's. */
export function randomTag(): string {
  return crypto.getRandomValues(new Uint32Array(1))[0].toString(36).padStart(7, "0").slice(-6);
}

/**
 * The first three octets of a /24 in `10.<second>.x.0` that no route or address of this
 * namespace mentions (e.g. `"10.201.17"`), starting from a per-process offset so concurrent runs
 * tend to pick different ones.
 */
export async function freeSubnet(second: number): Promise<string> {
  const routes = await run("ip", ["-4", "route", "show", "table", "all"]);
  const addrs = await run("ip", ["-4", "-o", "addr"]);
  for (let i = 0; i < 250; i++) {
    const prefix = `10.${second}.${1 + (Deno.pid + i) % 250}`;
    if (!routes.includes(`${prefix}.`) && !addrs.includes(`${prefix}.`)) return prefix;
  }
  throw new Error(`no free 10.${second}.x.0/24 subnet`);
}

/**
 * A network namespace joined to ours by a veth pair on a /24 of 10.201.x.0 that nothing else
 * here uses: `hostAddr` is our side, `nsAddr` the namespace's. {@linkcode Netns.close} deletes
 * both.
 */
export class Netns {
  private constructor(
    /** The namespace's name (for `ip netns exec`). */
    readonly name: string,
    /** Our end of the veth pair. */
    readonly hostLink: string,
    /** Our address on the pair. */
    readonly hostAddr: string,
    /** The namespace's address on the pair. */
    readonly nsAddr: string,
  ) {}

  /** Makes the namespace and the pair, `lo` up; needs root and `ip`. */
  static async create(): Promise<Netns> {
    await requireProgram("ip", "iproute2");
    const tag = randomTag();
    const name = `swinterop-${tag}`;
    const [v0, v1] = [`swi${tag}a`, `swi${tag}b`];
    const subnet = await freeSubnet(201);
    const ns = new Netns(name, v0, `${subnet}.1`, `${subnet}.2`);
    try {
      await run("ip", ["netns", "add", name]);
      await run("ip", ["link", "add", v0, "type", "veth", "peer", "name", v1]);
      await run("ip", ["link", "set", v1, "netns", name]);
      await run("ip", ["addr", "add", `${ns.hostAddr}/24`, "dev", v0]);
      await run("ip", ["link", "set", v0, "up"]);
      await run("ip", ["-n", name, "addr", "add", `${ns.nsAddr}/24`, "dev", v1]);
      await run("ip", ["-n", name, "link", "set", v1, "up"]);
      await run("ip", ["-n", name, "link", "set", "lo", "up"]);
    } catch (e) {
      await ns.close();
      throw e;
    }
    return ns;
  }

  /** Deletes the namespace and the veth pair; never throws. */
  async close(): Promise<void> {
    await tryRun("ip", ["netns", "del", this.name]);
    await tryRun("ip", ["link", "del", this.hostLink]);
  }
}

/**
 * A switched LAN: every host a network namespace of its own (`swn-TAG-NAME`) with `lo` up and
 * one interface, `eth0`, cabled by a veth pair to a bridge in a further namespace
 * (`swn-TAG-switch`), so nothing is added to ours. Host i (from 0) gets `PREFIX.(i+1)/24`.
 * Ours has no address on that subnet, but the subnet is still picked among those ours does not
 * use, so a reader of `ip` output is never misled.
 */
export class Lan {
  /** Namespace name of each host. */
  readonly ns: Record<string, string> = {};
  /** The switch's namespace. */
  readonly switchNs: string;
  #closed = false;

  private constructor(
    /** The random part of every name. */
    readonly tag: string,
    /** The hosts, in address order. */
    readonly hosts: readonly string[],
    /** First three octets of the subnet. */
    readonly prefix: string,
  ) {
    this.switchNs = `swn-${tag}-switch`;
    for (const h of hosts) this.ns[h] = `swn-${tag}-${h}`;
  }

  /** Builds the LAN; fails naming what is missing when not root or `ip` is not installed. */
  static async create(hosts: readonly string[]): Promise<Lan> {
    await requireProgram("ip", "iproute2");
    await requireRoot("a test that builds a network of namespaces");
    for (const h of hosts) {
      if (!/^[a-z0-9]{1,12}$/.test(h)) throw new Error(`bad host name ${JSON.stringify(h)}`);
    }
    const lan = new Lan(randomTag(), hosts, await freeSubnet(202));
    try {
      const sw = lan.switchNs;
      await run("ip", ["netns", "add", sw]);
      await run("ip", ["-n", sw, "link", "set", "lo", "up"]);
      await run("ip", ["-n", sw, "link", "add", "br0", "type", "bridge"]);
      await run("ip", ["-n", sw, "link", "set", "br0", "up"]);
      for (const h of hosts) {
        const ns = lan.ns[h];
        await run("ip", ["netns", "add", ns]);
        await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
        // Both ends are made inside their namespaces, so their names only need to be unique
        // there: `port-HOST` on the switch, `eth0` on the host.
        await run("ip", [
          "link",
          "add",
          lan.port(h),
          "netns",
          sw,
          "type",
          "veth",
          "peer",
          "name",
          "eth0",
          "netns",
          ns,
        ]);
        await run("ip", ["-n", sw, "link", "set", lan.port(h), "master", "br0"]);
        await run("ip", ["-n", sw, "link", "set", lan.port(h), "up"]);
        await run("ip", ["-n", ns, "addr", "add", `${lan.addr(h)}/24`, "dev", "eth0"]);
        await run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
      }
    } catch (e) {
      await lan.close();
      throw e;
    }
    return lan;
  }

  /** The address of `host`. */
  addr(host: string): string {
    const i = this.hosts.indexOf(host);
    if (i < 0) throw new Error(`no host ${host} on this LAN`);
    return `${this.prefix}.${i + 1}`;
  }

  /** The switch's port (its end of the veth pair) that `host` is cabled to. */
  port(host: string): string {
    return `port-${host}`;
  }

  /** Runs a command inside `host`'s namespace; resolves with its stdout. */
  exec(host: string, argv: string[]): Promise<string> {
    return run("ip", ["netns", "exec", this.ns[host], ...argv]);
  }

  /** The `ip netns exec` prefix for spawning a long-running process inside `host`. */
  execArgs(host: string): string[] {
    return ["netns", "exec", this.ns[host]];
  }

  /** Unplugs `host`'s cable at the switch: its `eth0` loses carrier, packets to it are lost. */
  async cut(host: string): Promise<void> {
    await run("ip", ["-n", this.switchNs, "link", "set", this.port(host), "down"]);
  }

  /** Plugs `host`'s cable back in. */
  async restore(host: string): Promise<void> {
    await run("ip", ["-n", this.switchNs, "link", "set", this.port(host), "up"]);
  }

  /**
   * Deletes every namespace (which deletes the veth pairs and the bridge in them); never throws.
   * Processes still running inside keep their namespace alive, so stop them first.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const ns of [...Object.values(this.ns), this.switchNs]) {
      await tryRun("ip", ["netns", "del", ns]);
    }
  }

  /** The namespaces of this LAN that still exist (empty after {@linkcode Lan.close}). */
  async leftovers(): Promise<string[]> {
    const list = await run("ip", ["netns", "list"]);
    return list.split("\n").map((l) => l.split(" ")[0]).filter((n) =>
      n.startsWith(`swn-${this.tag}-`)
    );
  }
}
