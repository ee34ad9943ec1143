/* The protocol state of one TCP connection (handshake.h): deframing with the framing the peer
 * is in, skipping frames longer than this end takes, and the offload handshake. Pure, so the
 * transport, the unit tests and the fuzzer run the same decisions. */
#include <errno.h>
#include <string.h>

#include "handshake.h"

/* The offload handshake. Only the client speaks first, so a simpletun client is never sent
 * anything but the user's packets (it writes whatever it gets to its device, and exits if that
 * fails while the device is still down):
 *   client (with offloads) -> HELLO, as its first frame
 *   server (with offloads) -> SWITCH, at once; every frame after it is extended
 *   client -> SWITCH; every frame after it is extended
 * HELLO counts only as the client's first frame, SWITCH only in answer to the HELLO or SWITCH
 * this end sent; anything else that looks like them is an ordinary packet. The transport
 * never sends such a packet in an ordinary frame (mt__tcp_send), so a peer cannot make us
 * relay a handshake to another peer. A simpletun server writes the HELLO to its device: an
 * IPv4 packet every kernel drops (protocol 253, RFC 3692's experiment number, 0.0.0.0 to
 * 0.0.0.0, a wrong header checksum). Tap mode has no offloads, so it sends no HELLO. */
static const uint8_t hs_ip[20] = {0x45, 0, 0, MT_HS_LEN, 0, 0, 0, 0, 1, 253};
static const char hs_magic[16] = "moontun-offload";
#define HS_TYPE 36

void mt_hs_message(uint8_t out[MT_HS_LEN], enum mt_hs_msg m)
{
    memset(out, 0, MT_HS_LEN);
    memcpy(out, hs_ip, sizeof(hs_ip));
    memcpy(out + 20, hs_magic, sizeof(hs_magic));
    out[HS_TYPE] = (uint8_t)m;
}

enum mt_hs_msg mt_hs_parse(const uint8_t *buf, size_t len)
{
    if (len != MT_HS_LEN || (buf[HS_TYPE] != MT_HS_HELLO && buf[HS_TYPE] != MT_HS_SWITCH))
        return MT_HS_NONE;
    uint8_t want[MT_HS_LEN];
    mt_hs_message(want, (enum mt_hs_msg)buf[HS_TYPE]);
    return memcmp(buf, want, MT_HS_LEN) == 0 ? (enum mt_hs_msg)buf[HS_TYPE] : MT_HS_NONE;
}

enum mt_hs_msg mt_wire_start(struct mt_wire *w, bool client, bool offloads)
{
    memset(w, 0, sizeof(*w));
    w->client = client;
    w->offloads = offloads;
    if (!client || !offloads)
        return MT_HS_NONE;
    w->awaiting = true;
    return MT_HS_HELLO;
}

/* An ordinary frame's payload: a handshake message where one may stand, else a packet. */
static void judge(struct mt_wire *w, const uint8_t *f, size_t len, struct mt_wire_item *it)
{
    bool first = !w->seen_first;
    w->seen_first = true;
    enum mt_hs_msg m = mt_hs_parse(f, len);
    if (m == MT_HS_HELLO && first && !w->client) {
        /* The client is moontun and can take extended frames. */
        it->ev = MT_WIRE_HANDSHAKE;
        if (w->offloads) {
            it->reply = MT_HS_SWITCH; /* the last ordinary frame we send */
            w->xsend = true;
            w->awaiting = true;
        }
        return;
    }
    if (m == MT_HS_SWITCH && w->awaiting) {
        w->awaiting = false;
        w->xrecv = true;
        it->ev = MT_WIRE_HANDSHAKE;
        if (w->client) {
            /* The server switched and so can take extended frames: switch our side too. */
            it->reply = MT_HS_SWITCH;
            w->xsend = true;
        }
        return;
    }
    it->ev = MT_WIRE_PACKET;
    it->data = f;
    it->len = len;
}

size_t mt_wire_next(struct mt_wire *w, const uint8_t *buf, size_t len, size_t frame_max,
                    struct mt_wire_item *it)
{
    memset(it, 0, sizeof(*it));
    if (w->skip > 0) {
        if (len == 0) {
            it->ev = MT_WIRE_MORE;
            return 0;
        }
        size_t n = len < w->skip ? len : w->skip;
        w->skip -= n;
        it->ev = MT_WIRE_SKIPPED;
        return n;
    }
    const uint8_t *payload = NULL;
    size_t plen = 0;
    ssize_t used;
    it->extended = w->xrecv;
    if (w->xrecv) {
        it->limit = MT_XFRAME_MAX;
        used = mt_xframe_decode(buf, len, MT_XFRAME_MAX, &payload, &plen);
    } else {
        it->limit = frame_max;
        used = mt_frame_decode(buf, len, frame_max, &payload, &plen);
    }
    if (used == 0) {
        it->ev = MT_WIRE_MORE;
        return 0;
    }
    if (used < 0) {
        it->claimed =
            w->xrecv ? (size_t)buf[0] << 24 | (size_t)buf[1] << 16 | (size_t)buf[2] << 8 | buf[3]
                     : (size_t)buf[0] << 8 | buf[1];
        /* A zero length, or an extended length beyond what a moontun sender ever announces,
         * means the stream is not ours or out of step: nothing after it can be trusted. An
         * ordinary frame longer than this end takes (the other end's --mtu is larger) is
         * still a frame: skip it without buffering it and stay in step. */
        if (w->xrecv || used != -EMSGSIZE) {
            it->ev = MT_WIRE_BAD;
            return 0;
        }
        w->seen_first = true; /* an oversized first frame is no HELLO either */
        w->oversized++;
        it->ev = MT_WIRE_OVERSIZE;
        size_t body = len - MT_FRAME_HDR; /* decode saw a whole header */
        size_t n = body < it->claimed ? body : it->claimed;
        w->skip = it->claimed - n;
        return MT_FRAME_HDR + n;
    }
    if (w->xrecv) {
        it->ev = MT_WIRE_XPACKET;
        it->data = payload;
        it->len = plen;
    } else {
        judge(w, payload, plen, it);
    }
    return (size_t)used;
}
