"""UDP helpers for the reload tests.
    udpcount.py recv ADDR PORT OUTFILE   append each datagram's payload as a line to OUTFILE
    udpcount.py send ADDR PORT SPORT TAG N SIZE [GAP]
                                         N datagrams of SIZE bytes from port SPORT, payloads
                                         "TAG-i" padded, GAP seconds apart (default 0.002)"""
import socket, sys, time

fam = socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
if sys.argv[1] == "recv":
    s.bind((sys.argv[2], int(sys.argv[3])))
    with open(sys.argv[4], "a") as out:
        while True:
            data = s.recv(65536)
            out.write(data.split(b" ")[0].decode() + "\n")
            out.flush()
else:
    addr, port, sport, tag, n, size = sys.argv[2:8]
    gap = float(sys.argv[8]) if len(sys.argv) > 8 else 0.002
    s.bind(("", int(sport)))
    for i in range(int(n)):
        s.sendto(("%s-%d " % (tag, i)).encode().ljust(int(size), b"x"), (addr, int(port)))
        time.sleep(gap)
