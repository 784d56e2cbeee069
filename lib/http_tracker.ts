/**
 * The tracker's HTTP endpoints for real BitTorrent clients: `GET /announce` (BEP 3, with BEP 23
 * compact peer lists) and `GET /scrape` (BEP 48), served on the same port as XML-RPC. Answers
 * are bencoded; a bad request gets a `failure reason`, never an HTTP error page, since that is
 * what clients show their users.
 *
 * @example
 * ```ts
 * import { announceRoutes } from "./http_tracker.ts";
 * const server = new XmlRpcHttpServer({ methods, routes: announceRoutes(registry) });
 * ```
 * @module
 */

import {
  AnnounceError,
  encodeAnnounceResponse,
  encodeFailure,
  encodeScrapeResponse,
  parseAnnounce,
  parseScrape,
} from "./announce.ts";
import { bytesEqual } from "./hash.ts";
import { type Registry, RegistryError } from "./registry.ts";
import type { RouteHandler } from "./xmlrpc_server.ts";

const HEADERS = { "content-type": "text/plain", "cache-control": "no-store" };

function reply(body: Uint8Array): Response {
  return new Response(body as Uint8Array<ArrayBuffer>, { status: 200, headers: HEADERS });
}

/**
 * The query string of a request URL, `?` included. Cut from the URL rather than parsed out of it
 * (which costs more than the rest of an announce): percent-decoding yields the same bytes either
 * way, since a URL parser only percent-encodes characters in a query.
 */
function queryOf(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return "";
  const hash = url.indexOf("#", q);
  return url.slice(q, hash < 0 ? url.length : hash);
}

/** The `/announce` and `/scrape` routes for {@linkcode XmlRpcHttpServer}'s `routes` option. */
export function announceRoutes(registry: Registry): Record<string, RouteHandler> {
  return {
    "/announce": (request, info) => {
      if (request.method !== "GET") return reply(encodeFailure("announce must be a GET request"));
      try {
        const a = parseAnnounce(queryOf(request.url));
        // The address comes from the connection, never from `ip=`: see Registry.announce.
        const address = info.remoteAddr.hostname;
        return reply(encodeAnnounceResponse(registry.announce(a, address), a.compact, a.noPeerId));
      } catch (e) {
        if (e instanceof AnnounceError || e instanceof RegistryError) {
          return reply(encodeFailure(e.message));
        }
        throw e;
      }
    },
    "/scrape": (request) => {
      if (request.method !== "GET") return reply(encodeFailure("scrape must be a GET request"));
      try {
        const wanted = parseScrape(queryOf(request.url));
        const all = registry.scrape();
        const files = wanted.length === 0
          ? all
          : all.filter((f) => wanted.some((h) => bytesEqual(h, f.infoHash)));
        return reply(encodeScrapeResponse(files));
      } catch (e) {
        if (e instanceof AnnounceError) return reply(encodeFailure(e.message));
        throw e;
      }
    },
  };
}
