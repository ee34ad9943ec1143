/* Addresses and prefixes (include/moontun/addr.h): the one place inet_pton/inet_ntop turn
 * text into addresses and back, for routes, options, scripts and peers' outer addresses.
 * Start-up and log paths only: the per-packet views in lua/lpacket.c format IPv4 by hand. */
#include "moontun/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_addr_parse(const char *text, struct mt_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->b) == 1)
        out->kind = MT_ADDR_IP4;
    else if (inet_pton(AF_INET6, text, out->b) == 1)
        out->kind = MT_ADDR_IP6;
    else
        return -EINVAL;
    return 0;
}

const char *mt_addr_str(const struct mt_addr *a, char *buf, size_t bufsz)
{
    char tmp[MT_ADDR_STRLEN];
    if (bufsz == 0)
        return buf;
    switch (a->kind) {
    case MT_ADDR_IP4:
        inet_ntop(AF_INET, a->b, tmp, sizeof(tmp));
        break;
    case MT_ADDR_IP6:
        inet_ntop(AF_INET6, a->b, tmp, sizeof(tmp));
        break;
    case MT_ADDR_MAC:
        snprintf(tmp, sizeof(tmp), "%02x:%02x:%02x:%02x:%02x:%02x", a->b[0], a->b[1], a->b[2],
                 a->b[3], a->b[4], a->b[5]);
        break;
    default:
        snprintf(tmp, sizeof(tmp), "none");
        break;
    }
    /* Cut rather than fail on a small buffer: this is for log lines. */
    snprintf(buf, bufsz, "%s", tmp);
    return buf;
}

bool mt_addr_is_multicast(const struct mt_addr *a)
{
    switch (a->kind) {
    case MT_ADDR_MAC:
        return a->b[0] & 1; /* the group bit; broadcast ff:ff:.. has it too */
    case MT_ADDR_IP4:
        return (a->b[0] >= 224 && a->b[0] <= 239) ||
               (a->b[0] == 255 && a->b[1] == 255 && a->b[2] == 255 && a->b[3] == 255);
    case MT_ADDR_IP6:
        return a->b[0] == 0xff;
    default:
        return false;
    }
}

/* A prefix length: digits only, 0..max. */
static int parse_len(const char *s, long max, long *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int mt_prefix_parse(const char *text, struct mt_prefix *out)
{
    char buf[MT_PREFIX_STRLEN + 4];
    size_t n = strlen(text);
    memset(out, 0, sizeof(*out));
    if (n == 0 || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, text, n + 1);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    if (mt_addr_parse(buf, &out->addr) < 0)
        return -EINVAL;
    long len = out->addr.kind == MT_ADDR_IP4 ? 32 : 128;
    if (slash && parse_len(slash + 1, len, &len) < 0) {
        memset(out, 0, sizeof(*out));
        return -EINVAL;
    }
    out->len = (uint8_t)len;
    return 0;
}

bool mt_prefix_contains(const struct mt_prefix *p, const struct mt_addr *a)
{
    if (p->addr.kind != a->kind)
        return false;
    unsigned full = p->len / 8, rest = p->len % 8;
    if (memcmp(p->addr.b, a->b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xFF << (8 - rest));
    return (p->addr.b[full] & mask) == (a->b[full] & mask);
}

const char *mt_prefix_str(const struct mt_prefix *p, char *buf, size_t bufsz)
{
    char a[MT_ADDR_STRLEN];
    snprintf(buf, bufsz, "%s/%u", mt_addr_str(&p->addr, a, sizeof(a)), (unsigned)p->len);
    return buf;
}

void mt_addr_from_sockaddr(const struct sockaddr *sa, struct mt_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (sa->sa_family == AF_INET) {
        a->kind = MT_ADDR_IP4;
        memcpy(a->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            a->kind = MT_ADDR_IP4;
            memcpy(a->b, &in6->s6_addr[12], 4);
        } else {
            a->kind = MT_ADDR_IP6;
            memcpy(a->b, in6, 16);
        }
    }
}

void mt_sockaddr_str(const struct sockaddr *sa, char *buf, size_t bufsz)
{
    struct mt_addr a;
    char host[MT_ADDR_STRLEN];
    mt_addr_from_sockaddr(sa, &a);
    if (a.kind == MT_ADDR_NONE) {
        snprintf(buf, bufsz, "?");
        return;
    }
    /* sin_port and sin6_port sit at the same offset. */
    unsigned port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    mt_addr_str(&a, host, sizeof(host));
    /* A v4-mapped address (dual-stack socket) reads better as plain IPv4. */
    snprintf(buf, bufsz, a.kind == MT_ADDR_IP6 ? "[%s]:%u" : "%s:%u", host, port);
}
