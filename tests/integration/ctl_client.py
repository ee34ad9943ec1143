#!/usr/bin/env python3
"""Control-socket client for test_control.sh, speaking the protocol by hand (not through
moontun): many clients at once, clients that misbehave, and the checks of what came back.

  ctl_client.py ask PATH LINE            print the reply body of one command
  ctl_client.py flood PATH N             N clients connected at once, each asks `show json`
  ctl_client.py hostile PATH             garbage, a 10 MB line, a disconnect mid-command and
                                         mid-reply, a reader that never reads
  ctl_client.py metrics FILE             parse FILE with the Prometheus parser, print a summary
  ctl_client.py http HOST PORT PATH      GET PATH, print status and body
"""
import json
import socket
import sys
import threading
import time


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def read_reply(s):
    """Returns (ok, body or message)."""
    f = s.makefile("rb")
    hdr = f.readline().decode()
    if hdr.startswith("error "):
        return False, hdr[6:].rstrip("\n")
    assert hdr.startswith("ok "), "bad header %r" % hdr
    n = int(hdr[3:])
    body = f.read(n)
    assert len(body) == n, "short body %d of %d" % (len(body), n)
    return True, body.decode()


def ask(path, line):
    s = connect(path)
    s.sendall(line.encode() + b"\n")
    r = read_reply(s)
    s.close()
    return r


def flood(path, n):
    socks = [connect(path) for _ in range(n)]  # all open at once before any asks
    results = [None] * n

    def one(i):
        try:
            socks[i].sendall(b"show json\n")
            ok, body = read_reply(socks[i])
            results[i] = ok and isinstance(json.loads(body)["peers"], list)
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = repr(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for s in socks:
        s.close()
    good = sum(1 for r in results if r is True)
    print("flood: %d/%d clients got a parsable reply" % (good, n))
    if good != n:
        print("flood: failures: %r" % [r for r in results if r is not True][:5])
        sys.exit(1)


def hostile(path):
    # binary garbage: an error, the connection stays usable for a real command afterwards
    s = connect(path)
    s.sendall(b"\x00\xff\x01garbage\n")
    ok, msg = read_reply(s)
    assert not ok and "printable" in msg, msg
    s.sendall(b"version\n")
    ok, body = read_reply(s)
    assert ok and body.startswith("moontun "), body
    s.close()
    print("hostile: garbage refused, connection still served")

    # a 10 MB line: refused after the first 4 KiB, connection closed
    s = connect(path)
    try:
        s.sendall(b"x" * (10 * 1024 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        ok, msg = read_reply(s)
        assert not ok and "longer" in msg, msg
        print("hostile: 10 MB line refused: %s" % msg)
    except (ConnectionResetError, BrokenPipeError, AssertionError) as e:
        # the server may close before we read its error: the point is it did not buffer 10 MB
        print("hostile: 10 MB line: connection closed (%s)" % type(e).__name__)
    s.close()

    # disconnect mid-command (half a line), then mid-reply (ask, read 10 bytes, close)
    for _ in range(20):
        s = connect(path)
        s.sendall(b"sho")
        s.close()
        s = connect(path)
        s.sendall(b"show json\n")
        s.recv(10)
        s.close()
    print("hostile: 40 clients gone mid-command or mid-reply")

    # a reader that asks for metrics 100 times without reading: only its own buffers fill
    s = connect(path)
    s.setblocking(False)
    try:
        for _ in range(100):
            s.send(b"metrics\n")
    except BlockingIOError:
        pass
    time.sleep(0.5)
    s.close()
    print("hostile: a reader that never reads, closed")


def metrics(fname):
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(open(fname).read())}
    out = {}
    for f in fams.values():
        for s in f.samples:
            key = s.name
            if "verdict" in s.labels:
                key += ":" + s.labels["verdict"]
            out[key] = out.get(key, 0) + s.value
    print(json.dumps({"families": len(fams), "values": out}, sort_keys=True))


def http(host, port, path):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    print(head.split(b"\r\n")[0].decode())
    sys.stdout.write(body.decode())


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "ask":
        ok, body = ask(sys.argv[2], sys.argv[3])
        sys.stdout.write(body if ok else "error " + body + "\n")
        sys.exit(0 if ok else 1)
    elif cmd == "flood":
        flood(sys.argv[2], int(sys.argv[3]))
    elif cmd == "hostile":
        hostile(sys.argv[2])
    elif cmd == "metrics":
        metrics(sys.argv[2])
    elif cmd == "http":
        http(sys.argv[2], sys.argv[3], sys.argv[4])
