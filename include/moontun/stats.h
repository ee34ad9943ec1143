/* Process-wide counters: what the tunnel did with every packet. Printed at exit. */
#ifndef MOONTUN_STATS_H
#define MOONTUN_STATS_H

#include <stdint.h>

struct mt_stats {
    uint64_t dev_rx_packets; /* read from the device */
    uint64_t dev_rx_bytes;
    uint64_t dev_tx_packets; /* written to the device */
    uint64_t dev_tx_bytes;
    uint64_t dev_tx_errors;  /* device writes that failed (EIO while down, ...) */
    uint64_t net_rx_packets; /* packets from peers */
    uint64_t net_rx_bytes;
    uint64_t net_tx_packets; /* packets to peers */
    uint64_t net_tx_bytes;
    uint64_t no_route;      /* egress packets with no peer to go to while peers are up */
    uint64_t not_connected; /* egress packets while no peer was up (a client before its
                               connection; IPv6 router solicitations at start) */
    uint64_t script_drops;  /* DROP verdicts */
    uint64_t script_replies;
    uint64_t queue_drops;   /* a peer's send queue was full */
    uint64_t bad_frames;    /* malformed frames/datagrams from the network */
    uint64_t too_big;       /* packets larger than the peer (or device) they were for can take */
    uint64_t bad_offloads;  /* a peer's offload (virtio-net) header that lied about its packet */
    uint64_t udp_gso_sends; /* UDP: sends of several datagrams at once (UDP_SEGMENT) */
    uint64_t udp_gro_reads; /* UDP: reads of several datagrams joined by the kernel (UDP_GRO) */
    uint64_t peers_up;
    uint64_t peers_down;
    uint64_t peers_refused; /* not in --allow, or over --max-peers */
    uint64_t script_errors; /* handler errors (incl. budget/memory aborts) */
    uint64_t budget_aborts; /* handlers stopped by the instruction budget */
    uint64_t memory_aborts; /* handlers stopped by the memory cap */
    uint64_t reloads;       /* successful reloads */
    uint64_t reload_failures;
};

#endif
