#!/usr/bin/env python3
"""A UDP relay that behaves like a NAT which rebinds: datagrams from the client (to
LISTEN:PORT) go to SERVER:PORT from an outbound socket, replies come back. When the file
REBIND exists, the relay drops that outbound socket and opens a new one (a new source port),
as a NAT does when its mapping expires. Exits after --seconds (bounded).

  udp_rebind_relay.py LISTEN PORT SERVER SPORT REBIND_FILE [--seconds 60]"""
import os
import selectors
import socket
import sys
import time


def main():
    listen, port, server, sport, flag = sys.argv[1:6]
    seconds = float(sys.argv[7]) if len(sys.argv) > 7 else 60.0
    inside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inside.bind((listen, int(port)))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.bind(("0.0.0.0", 0))
    client = None
    sel = selectors.DefaultSelector()
    sel.register(inside, selectors.EVENT_READ)
    sel.register(out, selectors.EVENT_READ)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if os.path.exists(flag):
            os.unlink(flag)
            sel.unregister(out)
            out.close()
            out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            out.bind(("0.0.0.0", 0))
            sel.register(out, selectors.EVENT_READ)
            print("rebound to port %d" % out.getsockname()[1], flush=True)
        for key, _ in sel.select(timeout=0.1):
            d, src = key.fileobj.recvfrom(65535)
            if key.fileobj is inside:
                client = src
                out.sendto(d, (server, int(sport)))
            elif client:
                inside.sendto(d, client)


if __name__ == "__main__":
    main()
