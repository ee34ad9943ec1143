"""A TCP conversation in two rounds with a pause between them, for tests that change something
(a reload) while a connection is open and idle. Usage:
    chat.py serve|connect ADDR PORT GOFILE speak|answer
Round 1: the connecting side says "hello", the serving side answers "hi". Then both wait until
GOFILE exists. Round 2: the side told to speak sends "again" and waits for "again-ack" from the
other. Prints "round1 ok", then "round2 ok" or "round2 timeout"; exits 0 only when both went
through."""
import os, socket, sys, time

role, addr, port, go, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET


def recv_word(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data.strip().decode()


if role == "serve":
    ls = socket.socket(fam)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    ls.settimeout(20)
    s, _ = ls.accept()
    s.settimeout(10)
    assert recv_word(s) == "hello"
    s.sendall(b"hi\n")
else:
    s = socket.create_connection((addr, port), timeout=10)
    s.sendall(b"hello\n")
    assert recv_word(s) == "hi"
print("round1 ok", flush=True)

deadline = time.time() + 30
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.05)
s.settimeout(6)
try:
    if mode == "speak":
        s.sendall(b"again\n")
        ok = recv_word(s) == "again-ack"
    else:
        ok = recv_word(s) == "again"
        s.sendall(b"again-ack\n")
    print("round2 ok" if ok else "round2 wrong", flush=True)
    sys.exit(0 if ok else 1)
except (socket.timeout, ConnectionError) as e:
    print("round2 timeout", e, flush=True)
    sys.exit(1)
