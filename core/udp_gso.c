/* Kernel UDP offloads, the pure part (see udp_gso.h). The rules are the kernel's: a GSO send
 * is cut at gso_size, so only the last piece may be shorter; GRO joins equal-sized datagrams
 * of one flow, the last of which may be shorter. */
#include "udp_gso.h"

size_t mt_udp_gso_run(const size_t *lens, size_t n, bool (*same)(void *ctx, size_t a, size_t b),
                      void *ctx)
{
    if (n == 0)
        return 0;
    size_t size = lens[0], total = lens[0], run = 1;
    while (run < n && run < MT_UDP_GSO_MAX_SEGS) {
        size_t len = lens[run];
        if (len == 0 || len > size || total + len > MT_UDP_GSO_MAX_BYTES || !same(ctx, 0, run))
            break;
        total += len;
        run++;
        if (len < size)
            break; /* a shorter one ends the run */
    }
    return run;
}

size_t mt_udp_gro_next(size_t len, size_t gso_size, size_t *off)
{
    if (*off >= len)
        return 0;
    size_t left = len - *off;
    size_t seg = gso_size == 0 || gso_size > left ? left : gso_size;
    *off += seg;
    return seg;
}
