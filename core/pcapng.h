/* The pcapng blocks a live capture is made of (moontun capture): a section header, one
 * interface description, enhanced packet blocks with a comment, and an interface statistics
 * block at the end. Written little-endian into a caller's buffer; pure, no I/O, tested byte
 * for byte in tests/unit/test_pcapng.c. Also the one check the client makes of a stream:
 * where the next complete block ends. */
#ifndef MOONTUN_CORE_PCAPNG_H
#define MOONTUN_CORE_PCAPNG_H

#include <stddef.h>
#include <stdint.h>

#define MT_PCAPNG_SHB 0x0A0D0D0Au
#define MT_PCAPNG_IDB 0x00000001u
#define MT_PCAPNG_EPB 0x00000006u
#define MT_PCAPNG_ISB 0x00000005u

#define MT_PCAPNG_LINK_ETHERNET 1   /* tap */
#define MT_PCAPNG_LINK_RAW      101 /* tun: an IPv4 or IPv6 packet */

/* Each writer returns the block's length (a multiple of 4), or 0 when it does not fit in cap
 * (nothing useful is left in out then). */

/* Section header: byte-order magic, version 1.0, section length unknown, shb_userappl. */
size_t mt_pcapng_shb(uint8_t *out, size_t cap, const char *app);
/* Interface description: linktype, snaplen, if_name, if_tsresol 9 (nanoseconds). */
size_t mt_pcapng_idb(uint8_t *out, size_t cap, uint16_t linktype, uint32_t snaplen,
                     const char *ifname);
/* The length of an enhanced packet block of caplen bytes with a comment of clen bytes. */
size_t mt_pcapng_epb_len(size_t caplen, size_t clen);
/* Enhanced packet block: interface 0, ts_ns nanoseconds since the epoch, caplen bytes of data
 * of a packet origlen long, opt_comment (NULL or "": none). */
size_t mt_pcapng_epb(uint8_t *out, size_t cap, uint64_t ts_ns, const uint8_t *data, size_t caplen,
                     size_t origlen, const char *comment);
/* Interface statistics for interface 0: isb_ifrecv (packets captured and offered) and
 * isb_ifdrop (lost: the reader was too slow). */
size_t mt_pcapng_isb(uint8_t *out, size_t cap, uint64_t ts_ns, uint64_t recv, uint64_t drop);

/* The length of the complete block at the front of buf (len bytes) and its type, 0 when more
 * bytes are needed, -1 when it is not a block (a length under 12, not a multiple of 4, over
 * max, or a trailing length that differs). Little-endian blocks only, as written above. */
long mt_pcapng_next(const uint8_t *buf, size_t len, size_t max, uint32_t *type);
/* isb_ifdrop of an ISB written above (0 when absent). */
uint64_t mt_pcapng_isb_drops(const uint8_t *blk, size_t len);

#endif
