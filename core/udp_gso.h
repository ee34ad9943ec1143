/* Kernel UDP offloads, the pure part: which queued datagrams may leave as one UDP_SEGMENT
 * (GSO) send, and how a UDP_GRO read is cut back into the datagrams it joined. Private to
 * the core; transport_udp.c does the syscalls. */
#ifndef MOONTUN_CORE_UDP_GSO_H
#define MOONTUN_CORE_UDP_GSO_H

#include <stdbool.h>
#include <stddef.h>

/* The kernel's limits on one GSO send: segments (UDP_MAX_SEGMENTS, 64 before Linux 6.3) and
 * bytes (the UDP payload of one IP packet, IPv6 headers counted). */
#define MT_UDP_GSO_MAX_SEGS  64
#define MT_UDP_GSO_MAX_BYTES (65535 - 40 - 8)

/* How many of the n datagrams (lens[0..n-1]) may go as one GSO send from the first: the
 * same destination (same(ctx, 0, i)), every one lens[0] bytes but the last, which may be
 * shorter, within the limits above. Always at least 1 when n > 0. */
size_t mt_udp_gso_run(const size_t *lens, size_t n, bool (*same)(void *ctx, size_t a, size_t b),
                      void *ctx);

/* The next datagram of a buffer of len bytes that UDP_GRO joined at gso_size bytes each (0:
 * it is one datagram): its offset is *off, its length the return value (0: no more), and
 * *off moves past it. */
size_t mt_udp_gro_next(size_t len, size_t gso_size, size_t *off);

#endif
