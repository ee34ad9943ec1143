/* Fuzzes a TCP connection's receive side as the transport drives it (core/handshake.c over
 * core/frame.c): the fuzzer's stream runs the offload handshake state machine of a client or
 * a server, switches it to extended frames (mt_xframe_decode) when the handshake allows,
 * skips frames longer than this end takes, and stops at a length no frame can have. The
 * stream arrives in reads of fuzzer-chosen sizes into the transport's receive buffer
 * (compacted after each read, ASan-poisoned past the data) and must give the same items as
 * the stream read in one piece; every item is checked against the handshake's rules.
 *
 * Input: [flags: bit 0 client, bit 1 offloads][max hi][max lo][k][k read-size selectors]
 * [stream]. max 0 means 65535. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "../../core/frame.c" /* WireGuard style: the code under test, compiled in here */
#include "../../core/handshake.c"
#include "moontun/vnet.h"
#include "handshake.h" /* MT_RX_BUF: the transport's receive buffer */

#define MAX_SELECTORS 16
#define MAX_ITEMS     200000

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_handshake: check failed at line %d: %s\n", __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An item as the one-piece read saw it (SKIPPED items depend on the read sizes: left out). */
struct item {
    enum mt_wire_ev ev;
    size_t off; /* PACKET/XPACKET: of the data, in the stream */
    size_t len, claimed;
    enum mt_hs_msg reply;
};

static struct item ref[MAX_ITEMS];
static size_t nref;
static struct mt_wire ref_end; /* the state after the one-piece read */
static uint8_t *rxbuf;
static volatile size_t sink;

/* Checks one mt_wire_next step: before is the state it started from. Returns the item. */
static void check_step(const struct mt_wire *before, const struct mt_wire *w,
                       const struct mt_wire_item *it, size_t used, const uint8_t *buf, size_t len,
                       size_t max, unsigned *replies)
{
    CHECK(used <= len);
    /* What a connection may become never goes back, and needs this end's offloads. */
    CHECK(w->xsend >= before->xsend && w->xrecv >= before->xrecv);
    CHECK(!w->xsend || w->offloads);
    CHECK(!w->xrecv || w->offloads);
    CHECK(w->client == before->client && w->offloads == before->offloads);
    if (it->ev != MT_WIRE_HANDSHAKE)
        CHECK(w->xsend == before->xsend && w->xrecv == before->xrecv);
    switch (it->ev) {
    case MT_WIRE_MORE:
        CHECK(used == 0);
        break;
    case MT_WIRE_PACKET:
        CHECK(!before->xrecv && before->skip == 0);
        CHECK(it->len >= 1 && it->len <= max);
        CHECK(it->data == buf + MT_FRAME_HDR && used == MT_FRAME_HDR + it->len);
        CHECK(((size_t)buf[0] << 8 | buf[1]) == it->len);
        /* A handshake-looking packet only where no handshake may stand. */
        if (mt_hs_parse(it->data, it->len) == MT_HS_HELLO)
            CHECK(before->client || before->seen_first);
        if (mt_hs_parse(it->data, it->len) == MT_HS_SWITCH)
            CHECK(!before->awaiting);
        sink += it->data[0] + it->data[it->len - 1];
        break;
    case MT_WIRE_XPACKET: {
        CHECK(before->xrecv && before->skip == 0);
        CHECK(it->len > MT_XFRAME_VNET && it->len <= MT_XFRAME_MAX);
        CHECK(it->data == buf + MT_XFRAME_HDR && used == MT_XFRAME_HDR + it->len);
        struct mt_vnet_hdr vnet;
        mt_vnet_read(it->data, &vnet);
        sink += vnet.gso_size + it->data[it->len - 1];
        break;
    }
    case MT_WIRE_HANDSHAKE: {
        CHECK(!before->xrecv && before->skip == 0);
        enum mt_hs_msg m = mt_hs_parse(buf + MT_FRAME_HDR, used - MT_FRAME_HDR);
        CHECK(m != MT_HS_NONE);
        if (m == MT_HS_HELLO) {
            /* Only a server, only as the client's first frame. */
            CHECK(!before->client && !before->seen_first);
            CHECK(it->reply == (w->offloads ? MT_HS_SWITCH : MT_HS_NONE));
        } else {
            /* Only in answer to our HELLO (client) or SWITCH (server). */
            CHECK(before->awaiting && !w->awaiting && w->xrecv);
            CHECK(before->client ? before->offloads : before->xsend);
            CHECK(it->reply == (before->client ? MT_HS_SWITCH : MT_HS_NONE));
        }
        if (it->reply != MT_HS_NONE) {
            CHECK(!before->xsend && w->xsend);
            CHECK(++*replies == 1); /* one SWITCH per connection */
        }
        break;
    }
    case MT_WIRE_OVERSIZE:
        CHECK(!before->xrecv && before->skip == 0);
        CHECK(it->claimed > max && it->claimed <= 65535 && it->limit == max);
        CHECK(used >= MT_FRAME_HDR && used - MT_FRAME_HDR + w->skip == it->claimed);
        CHECK(w->oversized == before->oversized + 1 && w->seen_first);
        break;
    case MT_WIRE_SKIPPED:
        CHECK(before->skip > 0 && used > 0 && before->skip - used == w->skip);
        break;
    case MT_WIRE_BAD:
        CHECK(used == 0 && before->skip == 0);
        if (before->xrecv)
            CHECK(it->claimed <= MT_XFRAME_VNET || it->claimed > MT_XFRAME_MAX);
        else
            CHECK(it->claimed == 0);
        break;
    }
}

static enum mt_hs_msg start(struct mt_wire *w, uint8_t flags)
{
    return mt_wire_start(w, flags & 1, flags & 2);
}

static void read_whole(uint8_t flags, const uint8_t *s, size_t n, size_t max)
{
    struct mt_wire w;
    unsigned replies = 0;
    start(&w, flags);
    size_t off = 0;
    nref = 0;
    for (;;) {
        struct mt_wire before = w;
        struct mt_wire_item it;
        size_t used = mt_wire_next(&w, s + off, n - off, max, &it);
        check_step(&before, &w, &it, used, s + off, n - off, max, &replies);
        if (it.ev != MT_WIRE_SKIPPED) {
            CHECK(nref < MAX_ITEMS);
            ref[nref++] = (struct item){it.ev, it.data ? (size_t)(it.data - s) : 0, it.len,
                                        it.claimed, it.reply};
        }
        off += used;
        if (it.ev == MT_WIRE_MORE || it.ev == MT_WIRE_BAD)
            break;
    }
    ref_end = w;
}

/* A selector byte as a read size: 1..128 bytes often, up to 64 KiB sometimes. */
static size_t chunk_size(uint8_t sel)
{
    return sel < 128 ? (size_t)sel + 1 : (size_t)(sel - 127) * 512;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    rxbuf = malloc(MT_RX_BUF);
    return rxbuf == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint8_t flags = data[0];
    size_t max = (size_t)data[1] << 8 | data[2];
    if (max == 0)
        max = MT_FRAME_MAX_ANY;
    size_t k = data[3] % (MAX_SELECTORS + 1);
    if (k > size - 4)
        k = size - 4;
    const uint8_t *sel = data + 4;
    const uint8_t *s = sel + k;
    size_t n = size - 4 - k;

    read_whole(flags, s, n, max);

    /* The transport: read what fits, take every item, keep the partial frame. */
    struct mt_wire w;
    unsigned replies = 0;
    start(&w, flags);
    ASAN_POISON_MEMORY_REGION(rxbuf, MT_RX_BUF);
    size_t rxlen = 0, base = 0, in = 0, seen = 0, reads = 0;
    bool stopped = false;
    while (in < n && !stopped) {
        size_t want = k > 0 ? chunk_size(sel[reads % k]) : n - in;
        reads++;
        size_t room = MT_RX_BUF - rxlen;
        CHECK(room > 0); /* a full buffer would read 0 bytes: taken for a closed peer */
        if (want > room)
            want = room;
        if (want > n - in)
            want = n - in;
        ASAN_UNPOISON_MEMORY_REGION(rxbuf + rxlen, want);
        memcpy(rxbuf + rxlen, s + in, want);
        rxlen += want;
        in += want;

        size_t off = 0;
        for (;;) {
            struct mt_wire before = w;
            struct mt_wire_item it;
            size_t used = mt_wire_next(&w, rxbuf + off, rxlen - off, max, &it);
            check_step(&before, &w, &it, used, rxbuf + off, rxlen - off, max, &replies);
            off += used;
            if (it.ev == MT_WIRE_MORE)
                break;
            if (it.ev == MT_WIRE_SKIPPED)
                continue;
            /* The same item, at the same place in the stream, as in one piece. */
            CHECK(seen < nref);
            const struct item *r = &ref[seen++];
            CHECK(it.ev == r->ev && it.len == r->len && it.claimed == r->claimed &&
                  it.reply == r->reply);
            if (it.data) {
                CHECK(base + (size_t)(it.data - rxbuf) == r->off);
                CHECK(memcmp(it.data, s + r->off, it.len) == 0);
            }
            if (it.ev == MT_WIRE_BAD) {
                stopped = true;
                break;
            }
        }
        if (stopped)
            break;
        memmove(rxbuf, rxbuf + off, rxlen - off);
        rxlen -= off;
        ASAN_POISON_MEMORY_REGION(rxbuf + rxlen, MT_RX_BUF - rxlen);
        base += off;
        /* At most one partial frame stays behind; a skipped frame leaves nothing. */
        CHECK(w.skip == 0 || rxlen == 0);
        CHECK(rxlen < (w.xrecv ? MT_XFRAME_HDR + MT_XFRAME_MAX : MT_FRAME_HDR + max));
    }
    /* Both reads end in the same state, the one-piece read's last item being MORE or BAD. */
    CHECK(seen == nref - (stopped ? 0 : 1));
    CHECK(w.xsend == ref_end.xsend && w.xrecv == ref_end.xrecv && w.skip == ref_end.skip);
    CHECK(w.oversized == ref_end.oversized && w.awaiting == ref_end.awaiting);
    return 0;
}
