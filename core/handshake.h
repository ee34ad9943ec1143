/* Private to the core: the protocol state of one TCP connection, as pure functions over bytes
 * (no socket, no clock): which framing the peer's stream is in, an oversized frame being
 * skipped, and the offload handshake. transport_tcp.c feeds it what it reads; the unit tests
 * and the fuzzer feed it bytes directly. */
#ifndef MOONTUN_CORE_HANDSHAKE_H
#define MOONTUN_CORE_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moontun/frame.h"
#include "moontun/packet.h"

/* The largest extended frame (its length field): a virtio-net header and a packet of at most
 * 64 KiB, the most any buffer behind it holds (a liar's 65,791-byte packet once overflowed
 * one). A moontun sender never announces more. */
#define MT_XFRAME_MAX (MT_XFRAME_VNET + MT_MAX_PACKET)

/* A TCP connection's receive buffer: two frames of the longest ordinary length, so a frame
 * being completed and the next header always fit (the fuzzers allocate the same). */
#define MT_FRAME_MAX_ANY 65535
#define MT_RX_BUF        (2 * (MT_FRAME_MAX_ANY + 2))

/* Handshake messages: ordinary frames holding a 44-byte IPv4 packet every kernel drops. */
#define MT_HS_LEN 44
enum mt_hs_msg { MT_HS_NONE = 0, MT_HS_HELLO = 1, MT_HS_SWITCH = 2 };

/* Writes message m (HELLO or SWITCH) into out. */
void mt_hs_message(uint8_t out[MT_HS_LEN], enum mt_hs_msg m);
/* Which handshake message buf[0..len) is byte for byte, or MT_HS_NONE. */
enum mt_hs_msg mt_hs_parse(const uint8_t *buf, size_t len);

struct mt_wire {
    bool client;        /* this end connected (only the client speaks first) */
    bool offloads;      /* this end can send and take super-packets (extended frames) */
    bool seen_first;    /* the peer's first frame has arrived */
    bool awaiting;      /* we sent HELLO (client) or SWITCH (server): the peer's SWITCH counts */
    bool xsend;         /* we send extended frames (after the SWITCH we sent) */
    bool xrecv;         /* the peer's stream holds extended frames from here on */
    size_t skip;        /* bytes of an oversized frame still to discard */
    uint64_t oversized; /* frames skipped so far */
};

/* Resets w for a new connection; returns the message to send as the very first frame
 * (HELLO from a client with offloads) or MT_HS_NONE. */
enum mt_hs_msg mt_wire_start(struct mt_wire *w, bool client, bool offloads);

enum mt_wire_ev {
    MT_WIRE_MORE,      /* need more bytes; nothing consumed */
    MT_WIRE_PACKET,    /* data/len: a packet from an ordinary frame */
    MT_WIRE_XPACKET,   /* data/len: virtio-net header + packet from an extended frame */
    MT_WIRE_HANDSHAKE, /* a handshake message, taken; send reply (if any) before anything else */
    MT_WIRE_OVERSIZE,  /* a frame longer than this end takes, stream in sync: being skipped */
    MT_WIRE_SKIPPED,   /* more bytes of that frame discarded */
    MT_WIRE_BAD,       /* a length no frame can have: the stream is lost, close */
};

struct mt_wire_item {
    enum mt_wire_ev ev;
    const uint8_t *data; /* PACKET, XPACKET */
    size_t len;
    size_t claimed;       /* OVERSIZE, BAD: the length the header announced */
    size_t limit;         /* OVERSIZE, BAD: the largest this end takes */
    bool extended;        /* OVERSIZE, BAD: the header was an extended frame's */
    enum mt_hs_msg reply; /* HANDSHAKE: the message to send now, or MT_HS_NONE */
};

/* Reads the next item at the start of buf[0..len); frame_max is the longest packet an
 * ordinary frame may carry at this end. Returns the bytes consumed (0 for MORE and BAD). */
size_t mt_wire_next(struct mt_wire *w, const uint8_t *buf, size_t len, size_t frame_max,
                    struct mt_wire_item *it);

#endif
