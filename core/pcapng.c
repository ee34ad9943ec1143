/* pcapng blocks (see pcapng.h and draft-ietf-opsawg-pcapng): every block is type, total
 * length, body, total length again; options are code, length, value padded to 32 bits and end
 * with opt_endofopt. */
#include "pcapng.h"

#include <string.h>

#define OPT_END      0
#define OPT_COMMENT  1
#define SHB_USERAPPL 4
#define IF_NAME      2
#define IF_TSRESOL   9
#define ISB_IFRECV   4
#define ISB_IFDROP   5

static size_t pad4(size_t n)
{
    return (n + 3) & ~(size_t)3;
}

static void le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
    le32(p, (uint32_t)v);
    le32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t opt_len(size_t vlen)
{
    return 4 + pad4(vlen);
}

/* One option at p; padding bytes are zero. Returns its length. */
static size_t put_opt(uint8_t *p, uint16_t code, const void *val, size_t vlen)
{
    le16(p, code);
    le16(p + 2, (uint16_t)vlen);
    if (vlen)
        memcpy(p + 4, val, vlen);
    memset(p + 4 + vlen, 0, pad4(vlen) - vlen);
    return opt_len(vlen);
}

/* Type and both lengths of a block of total length n. */
static void frame(uint8_t *out, uint32_t type, size_t n)
{
    le32(out, type);
    le32(out + 4, (uint32_t)n);
    le32(out + n - 4, (uint32_t)n);
}

size_t mt_pcapng_shb(uint8_t *out, size_t cap, const char *app)
{
    size_t alen = app ? strlen(app) : 0;
    if (alen > 0xffff)
        return 0;
    size_t n = 12 + 16 + (alen ? opt_len(alen) + 4 : 0);
    if (n > cap)
        return 0;
    le32(out + 8, 0x1A2B3C4Du); /* byte-order magic */
    le16(out + 12, 1);          /* version 1.0 */
    le16(out + 14, 0);
    le64(out + 16, UINT64_MAX); /* section length: not known in a stream */
    size_t at = 24;
    if (alen) {
        at += put_opt(out + at, SHB_USERAPPL, app, alen);
        at += put_opt(out + at, OPT_END, NULL, 0);
    }
    frame(out, MT_PCAPNG_SHB, n);
    return n;
}

size_t mt_pcapng_idb(uint8_t *out, size_t cap, uint16_t linktype, uint32_t snaplen,
                     const char *ifname)
{
    size_t nlen = ifname ? strlen(ifname) : 0;
    if (nlen > 0xffff)
        return 0;
    size_t n = 12 + 8 + (nlen ? opt_len(nlen) : 0) + opt_len(1) + 4;
    if (n > cap)
        return 0;
    le16(out + 8, linktype);
    le16(out + 10, 0);
    le32(out + 12, snaplen);
    size_t at = 16;
    if (nlen)
        at += put_opt(out + at, IF_NAME, ifname, nlen);
    uint8_t nano = 9; /* timestamps in 10^-9 s */
    at += put_opt(out + at, IF_TSRESOL, &nano, 1);
    put_opt(out + at, OPT_END, NULL, 0);
    frame(out, MT_PCAPNG_IDB, n);
    return n;
}

size_t mt_pcapng_epb_len(size_t caplen, size_t clen)
{
    return 12 + 20 + pad4(caplen) + (clen ? opt_len(clen) + 4 : 0);
}

size_t mt_pcapng_epb(uint8_t *out, size_t cap, uint64_t ts_ns, const uint8_t *data, size_t caplen,
                     size_t origlen, const char *comment)
{
    size_t clen = comment ? strlen(comment) : 0;
    if (clen > 0xffff || caplen > origlen || origlen > UINT32_MAX)
        return 0;
    size_t n = mt_pcapng_epb_len(caplen, clen);
    if (n > cap)
        return 0;
    le32(out + 8, 0); /* interface 0 */
    le32(out + 12, (uint32_t)(ts_ns >> 32));
    le32(out + 16, (uint32_t)ts_ns);
    le32(out + 20, (uint32_t)caplen);
    le32(out + 24, (uint32_t)origlen);
    memcpy(out + 28, data, caplen);
    memset(out + 28 + caplen, 0, pad4(caplen) - caplen);
    size_t at = 28 + pad4(caplen);
    if (clen) {
        at += put_opt(out + at, OPT_COMMENT, comment, clen);
        put_opt(out + at, OPT_END, NULL, 0);
    }
    frame(out, MT_PCAPNG_EPB, n);
    return n;
}

size_t mt_pcapng_isb(uint8_t *out, size_t cap, uint64_t ts_ns, uint64_t recv, uint64_t drop)
{
    size_t n = 12 + 12 + 2 * opt_len(8) + 4;
    if (n > cap)
        return 0;
    uint8_t v[8];
    le32(out + 8, 0);
    le32(out + 12, (uint32_t)(ts_ns >> 32));
    le32(out + 16, (uint32_t)ts_ns);
    size_t at = 20;
    le64(v, recv);
    at += put_opt(out + at, ISB_IFRECV, v, 8);
    le64(v, drop);
    at += put_opt(out + at, ISB_IFDROP, v, 8);
    put_opt(out + at, OPT_END, NULL, 0);
    frame(out, MT_PCAPNG_ISB, n);
    return n;
}

long mt_pcapng_next(const uint8_t *buf, size_t len, size_t max, uint32_t *type)
{
    if (len < 8)
        return 0;
    uint32_t n = rd32(buf + 4);
    if (n < 12 || n % 4 || n > max)
        return -1;
    if (len < n)
        return 0;
    if (rd32(buf + n - 4) != n)
        return -1;
    *type = rd32(buf);
    return (long)n;
}

uint64_t mt_pcapng_isb_drops(const uint8_t *blk, size_t len)
{
    if (len < 24 || rd32(blk) != MT_PCAPNG_ISB)
        return 0;
    size_t at = 20, end = len - 4;
    while (at + 4 <= end) {
        uint16_t code = (uint16_t)(blk[at] | blk[at + 1] << 8);
        uint16_t vlen = (uint16_t)(blk[at + 2] | blk[at + 3] << 8);
        if (code == OPT_END || pad4(vlen) > end - at - 4)
            break;
        if (code == ISB_IFDROP && vlen == 8)
            return rd32(blk + at + 4) | (uint64_t)rd32(blk + at + 8) << 32;
        at += opt_len(vlen);
    }
    return 0;
}
