/* Fuzzes the judgement of offload (virtio-net) headers that come from the network
 * (mt_vnet_check) and everything that trusts a header it passed: the segmenter, the re-plan
 * at a smaller MTU, the packet view's push/pull of offsets, and make_super's promise that what
 * it describes passes the check. Each packet is an exactly-sized heap copy, so a read or write
 * one byte past it is an ASan report.
 *
 * Input: byte 0 bit 0 = tap; byte 1 = the segment limit (576 + 32 * byte, up to 8736); bytes
 * 2-11 = the virtio-net header as on the wire (little-endian); the rest = the packet. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moontun/packet.h"
#include "moontun/proto.h"
#include "moontun/vnet.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_vnet: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct seg_ctx {
    size_t l3;      /* where the IP header starts in each segment */
    size_t max_seg; /* the most bytes a segment may hold from the IP header on */
    bool gso;
    unsigned n;
};

static int emit(void *ctx, const uint8_t *seg, size_t len)
{
    struct seg_ctx *c = ctx;
    CHECK(len > c->l3);
    if (c->gso)
        CHECK(len - c->l3 <= c->max_seg);
    c->n++;
    return 0;
}

static uint8_t scratch[MT_PKT_BUFSIZE];

static void segment_all(const uint8_t *p, size_t len, const struct mt_vnet_hdr *vh,
                        enum mt_link link, size_t max_seg)
{
    struct mt_hdrs h;
    mt_proto_parse(p, len, link, &h);
    struct seg_ctx c = {h.l3 < 0 ? 0 : (size_t)h.l3, max_seg, vh->gso_type != 0, 0};
    int rc = mt_vnet_segment(p, len, vh, link, scratch, sizeof(scratch), emit, &c);
    /* A header the check passed is one the segmenter honours, with a bounded fan-out. */
    CHECK(rc > 0);
    CHECK((unsigned)rc == c.n);
    CHECK(c.n <= MT_MAX_PACKET / MT_VNET_GSO_MIN + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 12)
        return 0;
    enum mt_link link = data[0] & 1 ? MT_LINK_ETH : MT_LINK_IP;
    size_t max_seg = 576 + 32 * (size_t)data[1];
    struct mt_vnet_hdr vh;
    mt_vnet_read(data + 2, &vh);
    size_t len = size - 12;
    if (len == 0 || len > MT_MAX_PACKET)
        return 0;
    uint8_t *p = malloc(len);
    CHECK(p);
    memcpy(p, data + 12, len);

    struct mt_vnet_hdr checked = vh;
    if (mt_vnet_check(p, len, &checked, link, max_seg) == 0) {
        /* What the check promises about the header it lets through. */
        CHECK((checked.flags & ~MT_VNET_F_NEEDS_CSUM) == 0);
        if (checked.gso_type == MT_VNET_GSO_NONE && !(checked.flags & MT_VNET_F_NEEDS_CSUM)) {
            struct mt_vnet_hdr zero = {0};
            CHECK(memcmp(&checked, &zero, sizeof(zero)) == 0);
        }
        if (checked.flags & MT_VNET_F_NEEDS_CSUM)
            CHECK(checked.csum_start < len && checked.csum_offset <= len - checked.csum_start &&
                  len - checked.csum_start - checked.csum_offset >= 2);
        if (checked.gso_type != MT_VNET_GSO_NONE) {
            CHECK(checked.flags & MT_VNET_F_NEEDS_CSUM);
            CHECK(checked.gso_size >= MT_VNET_GSO_MIN);
            CHECK(checked.hdr_len <= len);
        }
        /* Checked twice: the normalised header stays good (and the same). */
        struct mt_vnet_hdr again = checked;
        CHECK(mt_vnet_check(p, len, &again, link, max_seg) == 0);
        CHECK(memcmp(&again, &checked, sizeof(again)) == 0);
        segment_all(p, len, &checked, link, max_seg);

        /* Re-planned for a smaller MTU, TCP segments fit it. */
        struct mt_vnet_hdr fit = checked;
        size_t mtu = 576 + (size_t)(data[1] & 0x1f) * 16;
        mt_vnet_fit_mtu(p, len, link, mtu, &fit);
        CHECK(fit.gso_size <= checked.gso_size);
        uint8_t type = checked.gso_type & (uint8_t)~MT_VNET_GSO_ECN;
        bool tcp = type == MT_VNET_GSO_TCPV4 || type == MT_VNET_GSO_TCPV6;
        if (fit.gso_size < checked.gso_size) {
            CHECK(tcp);
            segment_all(p, len, &fit, link, mtu);
        }

        /* A header pushed in front and pulled again leaves the offsets where they were. */
        static uint8_t buf[MT_PKT_BUFSIZE];
        struct mt_packet pkt;
        mt_packet_init(&pkt, buf, sizeof(buf), MT_HEADROOM);
        CHECK(mt_packet_put(&pkt, len) == 0);
        memcpy(pkt.data, p, len);
        pkt.vnet = checked;
        size_t n = data[1] % 64;
        if (mt_packet_push(&pkt, n) == 0) {
            CHECK(mt_packet_pull(&pkt, n) == 0);
            CHECK(memcmp(&pkt.vnet, &checked, sizeof(checked)) == 0);
        }
    }

    /* make_super's result always passes the check at the same MTU. */
    size_t mtu = 576 + (size_t)data[1] * 32;
    struct mt_vnet_hdr super;
    if (mt_vnet_make_super(p, len, link, mtu, &super) == 0) {
        struct mt_vnet_hdr checked_super = super;
        CHECK(mt_vnet_check(p, len, &checked_super, link, mtu) == 0);
    }
    free(p);
    return 0;
}
