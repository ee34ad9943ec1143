"""An application that sends UDP with GSO (UDP_SEGMENT), as QUIC stacks do, and its receiver.
    udp_gso_app.py send ADDR PORT SENDS SEGS SIZE   SENDS sendmsg calls of SEGS datagrams of
                                                    SIZE bytes each, 5 ms apart
    udp_gso_app.py recv ADDR PORT SECONDS           counts datagrams until SECONDS of silence
                                                    (after the first); prints "N BAD": how many
                                                    came and how many had a wrong size or body"""
import socket, sys, time

UDP_SEGMENT = 103
fam = socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
addr, port = sys.argv[2], int(sys.argv[3])
if sys.argv[1] == "send":
    sends, segs, size = (int(x) for x in sys.argv[4:7])
    s.setsockopt(socket.SOL_UDP, UDP_SEGMENT, size)
    for i in range(sends):
        buf = b"".join(("%d-%d " % (i, j)).encode().ljust(size, b"u") for j in range(segs))
        s.sendto(buf, (addr, port))
        time.sleep(0.005)
else:
    # Room for the whole run (a busy machine may not schedule us for a while): as root past
    # net.core.rmem_max.
    SO_RCVBUFFORCE = 33
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
    s.bind((addr, port))
    s.settimeout(10)
    n = bad = 0
    try:
        while True:
            data = s.recv(65536)
            n += 1
            i, j = data.split(b" ")[0].split(b"-")
            if not data.rstrip(b"u").endswith(b" ") or not i.isdigit() or not j.isdigit():
                bad += 1
            s.settimeout(float(sys.argv[4]))
    except socket.timeout:
        pass
    print(n, bad)
