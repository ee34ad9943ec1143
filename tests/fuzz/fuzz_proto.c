/* Fuzzes the header parser and checksums (core/proto.c) and the routing address extraction
 * (mt_addr_from_packet) with arbitrary packets on both link types. Every call gets an
 * exactly-sized heap copy, so a read one byte past the packet is an ASan report.
 *
 * Input: the packet itself; both link types are tried on every input. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/proto.c" /* WireGuard style: the parser under test, compiled in here */
#include "moontun/route.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_proto: check failed at line %d: %s\n", __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static volatile size_t sink;

static bool hdrs_equal(const struct mt_hdrs *a, const struct mt_hdrs *b)
{
    return a->l2 == b->l2 && a->l3 == b->l3 && a->l4 == b->l4 && a->ethertype == b->ethertype &&
           a->ipver == b->ipver && a->l4proto == b->l4proto && a->l3len == b->l3len &&
           a->l4len == b->l4len && a->fragment == b->fragment;
}

/* The promises proto.h makes about what mt_proto_parse returns. */
static void check_hdrs(const uint8_t *p, size_t len, enum mt_link link, const struct mt_hdrs *h)
{
    CHECK(h->l2 == -1 || (h->l2 == 0 && link == MT_LINK_ETH && len >= MT_ETH_HLEN));
    if (link == MT_LINK_IP)
        CHECK(h->l2 == -1);
    if (h->l3 < 0) {
        CHECK(h->l3 == -1 && h->l4 == -1 && h->ipver == 0);
        return;
    }
    size_t l3 = (size_t)h->l3;
    CHECK(l3 <= len);
    CHECK(h->ipver == 4 || h->ipver == 6);
    /* the fixed header is whole */
    CHECK((h->ipver == 4 ? MT_IP4_HLEN : MT_IP6_HLEN) <= len - l3);
    CHECK(p[l3] >> 4 == h->ipver);
    CHECK(h->ethertype == (h->ipver == 4 ? MT_ETHERTYPE_IP4 : MT_ETHERTYPE_IP6));
    if (link == MT_LINK_ETH)
        CHECK(h->l2 == 0 && l3 >= MT_ETH_HLEN);
    else
        CHECK(l3 == 0);
    CHECK(h->l3len <= len - l3);
    CHECK(h->l4len <= h->l3len);
    if (h->l4 < 0) {
        CHECK(h->l4 == -1);
        return;
    }
    size_t l4 = (size_t)h->l4;
    CHECK(l4 > l3 && l4 <= len);
    CHECK(l4_known(h->ipver, h->l4proto));
    /* the transport header and the payload the IP header claims lie inside the packet */
    CHECK(h->l4len <= len - l4);
    CHECK(l4 - l3 + h->l4len == h->l3len);
    size_t need = h->l4proto == MT_IPPROTO_TCP   ? MT_TCP_HLEN
                  : h->l4proto == MT_IPPROTO_UDP ? MT_UDP_HLEN
                                                 : ICMP_HLEN;
    CHECK(h->l4len >= need);
    if (h->l4proto == MT_IPPROTO_TCP) {
        size_t doff = (size_t)(p[l4 + 12] >> 4) * 4;
        CHECK(doff >= MT_TCP_HLEN && doff <= h->l4len);
    }
    if (h->ipver == 4) {
        size_t ihl = (size_t)(p[l3] & 0x0f) * 4;
        CHECK(l4 == l3 + ihl);
        CHECK((rd16(p + l3 + 6) & 0x1fff) == 0); /* only a first fragment has one */
    }
}

static void one(const uint8_t *data, size_t size, enum mt_link link)
{
    /* exactly size bytes (at least one, so a zero-length packet still has a valid pointer) */
    uint8_t *p = malloc(size ? size : 1);
    CHECK(p != NULL);
    memcpy(p, data, size);

    struct mt_hdrs h, h2;
    mt_proto_parse(p, size, link, &h);
    check_hdrs(p, size, link, &h);
    mt_proto_parse(p, size, link, &h2);
    CHECK(hdrs_equal(&h, &h2));

    /* A prefix of the packet must never parse to headers past its end. */
    if (size > 0) {
        size_t cut = data[0] % size;
        mt_proto_parse(p, cut, link, &h2);
        check_hdrs(p, cut, link, &h2);
    }

    char line[256];
    size_t n = mt_proto_summary(p, size, link, line, sizeof line);
    CHECK(n < sizeof line && strlen(line) == n);
    /* short output buffers cut the line, never overrun it */
    for (size_t sz = 0; sz < 12; sz += 5) {
        char *small = malloc(sz ? sz : 1);
        CHECK(small != NULL);
        size_t m = mt_proto_summary(p, size, link, small, sz);
        if (sz > 0) {
            CHECK(m < sz && strlen(small) == m);
            CHECK(strncmp(small, line, m) == 0);
        } else {
            CHECK(m == 0);
        }
        free(small);
    }

    bool ok = mt_proto_checksums_ok(p, size, link);
    sink += ok;

    struct mt_addr a;
    for (int dst = 0; dst < 2; dst++) {
        int rc = mt_addr_from_packet(p, size, link, dst, &a);
        CHECK(rc == 0 || rc == -EINVAL);
        if (rc == 0) {
            CHECK(a.kind == (link == MT_LINK_ETH ? MT_ADDR_MAC : h.ipver));
            char text[64];
            mt_addr_str(&a, text, sizeof text);
            sink += strlen(text) + mt_addr_is_multicast(&a);
        } else {
            CHECK(link == MT_LINK_ETH ? size < MT_ETH_HLEN : h.l3 < 0);
        }
    }

    /* Fixing the checksums of a copy: it touches only checksum fields, so the headers parse
     * the same; afterwards every checksum verifies (fix covers exactly what checksums_ok
     * judges, fragments and liars included); and fixing is idempotent. */
    uint8_t *q = malloc(size ? size : 1);
    CHECK(q != NULL);
    memcpy(q, p, size);
    int rc = mt_proto_fix_checksums(q, size, link);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc == -EINVAL)
        CHECK(memcmp(p, q, size) == 0);
    if (ok && rc == 0) {
        /* every checksum already verified; a recompute may change only the encoding of zero
         * (0x0000 and 0xffff are the same one's-complement number) */
        sink += memcmp(p, q, size) == 0;
    }
    mt_proto_parse(q, size, link, &h2);
    CHECK(hdrs_equal(&h, &h2));
    CHECK(mt_proto_checksums_ok(q, size, link));
    uint8_t *r = malloc(size ? size : 1);
    CHECK(r != NULL);
    memcpy(r, q, size);
    CHECK(mt_proto_fix_checksums(r, size, link) == rc);
    CHECK(memcmp(q, r, size) == 0);
    free(r);
    free(q);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size, MT_LINK_IP);
    one(data, size, MT_LINK_ETH);
    return 0;
}
