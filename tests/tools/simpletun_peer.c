/* A peer that behaves as the tutorial's simpletun does, for the integration tests (written
 * from the protocol's description): it opens a tun or tap device, connects or accepts at once
 * (before anyone configures the device), then copies packets both ways with simpletun's
 * framing (2-byte big-endian length, the packet). Every frame it receives is written to the
 * device with one write(); the first failed write ends the program with "Writing data: ...",
 * as simpletun's does. Its buffer is 2000 bytes, simpletun's size: a longer frame ends it too
 * (simpletun would overflow its buffer there).
 *
 *   simpletun_peer -i IFNAME [-u|-a] (-s | -c IPV4) [-p PORT]   */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSIZE 2000

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Reads exactly n bytes; 0 when the peer closed the connection first. */
static int read_n(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("Reading data");
        if (r == 0)
            return 0;
        got += (size_t)r;
    }
    return 1;
}

static void write_all(int fd, const uint8_t *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            die("Sending data");
        buf += w;
        n -= (size_t)w;
    }
}

static int open_device(const char *name, short mode)
{
    int fd = open("/dev/net/tun", O_RDWR);
    if (fd < 0)
        die("Opening /dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = mode | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        die("ioctl(TUNSETIFF)");
    return fd;
}

static int connect_or_accept(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        die("socket()");
    if (host) {
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
            fprintf(stderr, "bad address %s\n", host);
            exit(2);
        }
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            die("connect()");
        return s;
    }
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("bind()");
    if (listen(s, 1) < 0)
        die("listen()");
    int c = accept(s, NULL, NULL);
    if (c < 0)
        die("accept()");
    close(s);
    return c;
}

int main(int argc, char **argv)
{
    const char *ifname = "", *host = NULL;
    short mode = IFF_TUN;
    int port = 55555, server = 0, opt;
    while ((opt = getopt(argc, argv, "i:sc:p:ua")) != -1) {
        switch (opt) {
        case 'i':
            ifname = optarg;
            break;
        case 's':
            server = 1;
            break;
        case 'c':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'u':
            mode = IFF_TUN;
            break;
        case 'a':
            mode = IFF_TAP;
            break;
        default:
            fprintf(stderr, "usage: %s -i IFNAME [-u|-a] (-s | -c IPV4) [-p PORT]\n", argv[0]);
            return 2;
        }
    }
    if (server == (host != NULL)) {
        fprintf(stderr, "give exactly one of -s and -c\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int dev = open_device(ifname, mode);
    int net = connect_or_accept(host, port);
    printf("simpletun_peer: connected\n");

    static uint8_t buf[BUFSIZE];
    unsigned long to_net = 0, from_net = 0;
    int maxfd = dev > net ? dev : net;
    for (;;) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(dev, &rd);
        FD_SET(net, &rd);
        if (select(maxfd + 1, &rd, NULL, NULL, NULL) < 0) {
            if (errno == EINTR)
                continue;
            die("select()");
        }
        if (FD_ISSET(dev, &rd)) {
            ssize_t n = read(dev, buf + 2, BUFSIZE - 2);
            if (n < 0)
                die("Reading data");
            buf[0] = (uint8_t)(n >> 8);
            buf[1] = (uint8_t)n;
            write_all(net, buf, (size_t)n + 2);
            to_net++;
        }
        if (FD_ISSET(net, &rd)) {
            uint8_t hdr[2];
            if (!read_n(net, hdr, 2))
                break;
            size_t len = (size_t)hdr[0] << 8 | hdr[1];
            if (len > BUFSIZE) {
                fprintf(stderr, "frame of %zu bytes does not fit the %d-byte buffer\n", len,
                        BUFSIZE);
                return 1;
            }
            if (!read_n(net, buf, len))
                break;
            from_net++;
            if (write(dev, buf, len) < 0)
                die("Writing data");
        }
    }
    printf("simpletun_peer: connection closed; %lu frames sent, %lu received\n", to_net, from_net);
    return 0;
}
