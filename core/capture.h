/* Live capture with verdicts (moontun capture): the packets of chosen decision points, with
 * the fate core/tunnel.c gave each, streamed as pcapng to control-socket clients. Each
 * captured packet's enhanced packet block carries a comment naming the point, the peer, the
 * script and handler that decided, the verdict and the reason or error. The data path pays one
 * test of t->captures per decision point while no capture runs; a slow reader loses captured
 * packets (counted), never tunnel packets. */
#ifndef MOONTUN_CORE_CAPTURE_H
#define MOONTUN_CORE_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctlproto.h"
#include "moontun/script.h"

struct mt_tunnel;

#define MT_CAPTURE_MAX 8             /* running at once, per tunnel */
#define MT_CAPTURE_BUF (1024 * 1024) /* bytes queued per client; beyond, packets are lost */

/* Where a packet's fate is decided. */
enum mt_cap_point {
    MT_CAP_DEVICE_IN = 1,  /* read from the device: the egress hooks and routing decided */
    MT_CAP_DEVICE_OUT = 2, /* written to the device (or the write failed) */
    MT_CAP_NET_IN = 4,     /* from a peer: decode, offload check, sources, ingress hooks */
    MT_CAP_NET_OUT = 8,    /* to a peer, after encode: queued, or dropped (encode, size, queue) */
};

/* What happened to a packet at its point. */
struct mt_fate {
    enum mt_verdict verdict;    /* ROUTE: forwarded to peer by a script */
    const struct mt_peer *peer; /* where it came from (net-in) or goes to; NULL: none */
    const char *reason;         /* a drop by the core ("no route", ...); NULL: none */
    int err;                    /* an errno of a failed write or send; 0: none */
    bool scripted;              /* the verdict came from the last chain: name its decider */
};

/* Starts a capture for a control client: words are the request after "capture" (POINTS
 * VERDICTS COUNT [FILTER...]). On success the capture owns fd (it answers "stream pcapng",
 * then the blocks) and returns 0; else a negative errno with one line in err for the client,
 * and fd stays the caller's. */
int mt__capture_start(struct mt_tunnel *t, int fd, char **words, int n, char *err, size_t errsz);
/* A packet's fate at point: offered to every running capture that wants that point and
 * verdict and whose filter matches. Call only when t->captures is set. */
void mt__capture(struct mt_tunnel *t, enum mt_cap_point point, const uint8_t *data, size_t len,
                 const struct mt_fate *f);
/* The running captures, for moontun show (nothing when none), and as the elements of show
 * --json's "captures" array. */
void mt__capture_show(const struct mt_tunnel *t, struct mt_buf *b);
void mt__capture_json(const struct mt_tunnel *t, struct mt_buf *b);
/* Ends every capture (exit): what is queued and the end block are sent if the socket takes
 * them at once, then each is closed. */
void mt__capture_close_all(struct mt_tunnel *t);

#endif
