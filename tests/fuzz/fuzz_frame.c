/* Fuzzes the TCP frame decoder (core/frame.c) the way the TCP transport drives it: a byte
 * stream arrives in reads of fuzzer-chosen sizes into a 2*65537-byte receive buffer that is
 * compacted after each read, and must yield exactly the frames the same stream yields when
 * decoded in one piece. The decoder's contract (frame.h) is checked on every call.
 *
 * Input: [max hi][max lo][k][k chunk-size selectors][stream...]. max 0 means 65535. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "../../core/frame.c" /* WireGuard style: the parser under test, compiled in here */
#include "handshake.h"        /* MT_RX_BUF, MT_FRAME_MAX_ANY: the transport's own sizes */

#define MAX_SELECTORS 16

struct frame {
    size_t off; /* of the payload, in the stream */
    size_t len;
};

/* What the one-piece decode found: every frame, then how it stopped. */
static struct frame ref[70000];
static size_t nref;
static ssize_t ref_end;  /* 0 (needs more bytes) or the negative errno */
static size_t ref_at;    /* stream offset where it stopped */
static uint8_t *rxbuf;   /* MT_RX_BUF bytes on the heap, so ASan sees its ends */
static size_t last_plen; /* hides the values from the optimiser */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_frame: check failed at line %d: %s\n", __LINE__, #cond);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Checks one mt_frame_decode result over buf[0..len) against the contract in frame.h. */
static void check_result(ssize_t used, const uint8_t *buf, size_t len, size_t max,
                         const uint8_t *payload, size_t plen)
{
    if (used < 0) {
        CHECK(used == -EPROTO || used == -EMSGSIZE);
        CHECK(len >= MT_FRAME_HDR);
        size_t n = (size_t)buf[0] << 8 | buf[1];
        CHECK(used == -EPROTO ? n == 0 : n > max);
        return;
    }
    CHECK((size_t)used <= len);
    if (used == 0) {
        /* more bytes needed: no whole header yet, or fewer bytes than it announces */
        CHECK(len < MT_FRAME_HDR || ((size_t)buf[0] << 8 | buf[1]) > len - MT_FRAME_HDR);
        return;
    }
    CHECK(plen == ((size_t)buf[0] << 8 | buf[1]));
    CHECK(plen >= 1 && plen <= max);
    CHECK((size_t)used == plen + MT_FRAME_HDR);
    CHECK(payload == buf + MT_FRAME_HDR);
    CHECK(payload >= buf && plen <= len - (size_t)(payload - buf));
    last_plen += payload[0] + payload[plen - 1]; /* touch both ends under ASan */
}

static void decode_whole(const uint8_t *s, size_t n, size_t max)
{
    size_t off = 0;
    nref = 0;
    for (;;) {
        const uint8_t *payload = NULL;
        size_t plen = 0;
        ssize_t used = mt_frame_decode(s + off, n - off, max, &payload, &plen);
        check_result(used, s + off, n - off, max, payload, plen);
        if (used <= 0) {
            ref_end = used;
            ref_at = off;
            return;
        }
        CHECK(nref < sizeof ref / sizeof ref[0]);
        ref[nref].off = (size_t)(payload - s);
        ref[nref].len = plen;
        nref++;
        off += (size_t)used;
    }
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
    if (size < 3)
        return 0;
    size_t max = (size_t)data[0] << 8 | data[1];
    if (max == 0)
        max = MT_FRAME_MAX_ANY;
    size_t k = data[2] % (MAX_SELECTORS + 1);
    if (k > size - 3)
        k = size - 3;
    const uint8_t *sel = data + 3;
    const uint8_t *s = sel + k;
    size_t n = size - 3 - k;

    decode_whole(s, n, max);

    /* The transport: read what fits, decode every whole frame, keep the partial one. */
    /* Beyond rxlen the buffer holds stale bytes of earlier frames; poisoned, so a decoder
     * reading past what it was given is caught even inside the buffer. */
    ASAN_POISON_MEMORY_REGION(rxbuf, MT_RX_BUF);
    size_t rxlen = 0, base = 0, in = 0, seen = 0, reads = 0;
    bool stopped = false;
    while (in < n && !stopped) {
        size_t want = k > 0 ? chunk_size(sel[reads % k]) : n - in;
        reads++;
        size_t room = MT_RX_BUF - rxlen;
        /* The transport reads into the room left; a full buffer would read 0 bytes and be
         * taken for a closed connection. Compaction must always leave room. */
        CHECK(room > 0);
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
            const uint8_t *payload = NULL;
            size_t plen = 0;
            ssize_t used = mt_frame_decode(rxbuf + off, rxlen - off, max, &payload, &plen);
            check_result(used, rxbuf + off, rxlen - off, max, payload, plen);
            if (used == 0)
                break;
            if (used < 0) {
                /* The same error, at the same place in the stream, as in one piece. */
                CHECK(seen == nref);
                CHECK(used == ref_end);
                CHECK(base + off == ref_at);
                stopped = true;
                break;
            }
            CHECK(seen < nref);
            CHECK(base + (size_t)(payload - rxbuf) == ref[seen].off);
            CHECK(plen == ref[seen].len);
            CHECK(memcmp(payload, s + ref[seen].off, plen) == 0);
            seen++;
            off += (size_t)used;
        }
        if (stopped)
            break;
        memmove(rxbuf, rxbuf + off, rxlen - off);
        rxlen -= off;
        ASAN_POISON_MEMORY_REGION(rxbuf + rxlen, MT_RX_BUF - rxlen);
        base += off;
        /* At most one partial frame stays behind, shorter than the longest whole one. */
        CHECK(rxlen < MT_FRAME_HDR + max);
    }
    if (!stopped) {
        /* The stream ran out: every frame was delivered, the rest is one partial frame. */
        CHECK(seen == nref);
        CHECK(ref_end == 0);
        CHECK(base == ref_at);
        CHECK(rxlen == n - ref_at);
    }
    return 0;
}
