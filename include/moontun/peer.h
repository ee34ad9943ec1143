/* A peer: the other end of the tunnel as scripts and logs see it. The transport-specific
 * part (socket, buffers, timers) lives in the core; what is here is read-only to scripts. */
#ifndef MOONTUN_PEER_H
#define MOONTUN_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mt_prefix;

#define MT_PEER_ADDRSTRLEN 64 /* "[ffff:...:ffff]:65535" fits */

struct mt_peer_stats {
    uint64_t rx_packets; /* packets received from the peer (after deframing) */
    uint64_t rx_bytes;
    uint64_t tx_packets; /* packets sent to the peer */
    uint64_t tx_bytes;
    uint64_t drops; /* packets for this peer dropped: queue full, send error */
};

struct mt_peer {
    char addr[MT_PEER_ADDRSTRLEN]; /* ro: "host:port" of the outer socket */
    char name[64];                 /* rw: defaults to addr; scripts may rename */
    uint32_t id;                   /* ro: unique for the life of the process */
    char key[48];                  /* ro: WireGuard: its base64 public key; "" otherwise */
    /* ro, WireGuard only: its AllowedIPs (owned by the transport, NULL otherwise) and when its
     * last handshake completed (CLOCK_MONOTONIC ns, 0: none yet). */
    const struct mt_prefix *allowed;
    size_t n_allowed;
    uint64_t handshake_ns;
    bool up;                    /* ro: false once it is gone (objects may outlive it) */
    struct mt_peer_stats stats; /* ro */
};

/* How logs name a peer: "name (host:port)" once a script named it, else "host:port". The
 * text lives in one of two static buffers: use it in the log line at hand. */
const char *mt_peer_label(const struct mt_peer *p);

#endif
