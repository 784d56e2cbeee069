#!/usr/bin/python3
"""A libtorrent (python3-libtorrent, Debian's package) BitTorrent client for the interop tests.

usage: /usr/bin/python3 lt_client.py leech|seed TORRENT DIR PORT [--host 127.0.0.1]

Listens on HOST:PORT (TCP only: no uTP, DHT, local discovery, UPnP or NAT-PMP), adds TORRENT with
DIR as its save path and runs until SIGTERM or SIGINT. A seeder expects the complete file in DIR
and has it checked; a leecher downloads it there and keeps seeding once complete.

It prints one line per event, flushed at once, for the tests to wait on:
  listening PORT            the session is up
  progress N/TOTAL          pieces held, whenever that number changes
  complete                  every piece is held and checked (leecher and seeder alike)
  peer IP:PORT CLIENT down=BYTES up=BYTES   on leaving, per connected peer
  stopped                   last line, after SIGTERM/SIGINT
Errors the tests should see (tracker failures, file errors) go to stderr.
"""

import signal
import sys
import time

import libtorrent as lt


def main(argv):
    args = list(argv)
    host = "127.0.0.1"
    if "--host" in args:
        i = args.index("--host")
        host = args[i + 1]
        del args[i : i + 2]
    if len(args) != 4 or args[0] not in ("leech", "seed"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    mode, torrent, save_path, port = args[0], args[1], args[2], int(args[3])

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))

    session = lt.session(
        {
            "listen_interfaces": f"{host}:{port}",
            "outgoing_interfaces": host,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_incoming_utp": False,
            "enable_outgoing_utp": False,
            # Every peer in a test is on the same address.
            "allow_multiple_connections_per_ip": True,
            "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.tracker_notification,
            # Announce again soon after a failure, and do not wait long between tries.
            "tracker_backoff": 0,
            "min_reconnect_time": 1,
            "peer_connect_timeout": 3,
        }
    )
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    handle = session.add_torrent(params)
    print(f"listening {session.listen_port()}", flush=True)

    total = params.ti.num_pieces()
    last = -1
    done = False
    while not stop:
        for a in session.pop_alerts():
            if isinstance(a, (lt.tracker_error_alert, lt.file_error_alert, lt.torrent_error_alert)):
                print(f"{mode}: {a.message()}", file=sys.stderr, flush=True)
        s = handle.status()
        if s.num_pieces != last:
            last = s.num_pieces
            print(f"progress {last}/{total}", flush=True)
        if not done and s.is_seeding and s.state == lt.torrent_status.seeding:
            done = True
            print("complete", flush=True)
        time.sleep(0.05)

    for p in handle.get_peer_info():
        ip, pport = p.ip
        client = p.client.decode("utf-8", "replace") if isinstance(p.client, bytes) else p.client
        client = client.replace(" ", "_") or "unknown"
        print(f"peer {ip}:{pport} {client} down={p.total_download} up={p.total_upload}", flush=True)
    session.remove_torrent(handle)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
