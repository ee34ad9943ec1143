/* The -d live trace (include/moontun/trace.h): the packet as it arrived, its fate, and the
 * header fields the scripts changed. Runs only under -d, so it may copy whole packets. */
#include "moontun/trace.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "moontun/log.h"
#include "moontun/proto.h"

/* The packet before the hooks. One loop thread, and begin/end never nest (hooks cannot call
 * back into the core's per-packet path), so one static copy serves. */
static uint8_t before[MT_MAX_PACKET];
static size_t before_len;
static uint64_t before_errors;

void mt_trace_begin(const struct mt_packet *pkt, uint64_t script_errors)
{
    /* The core never hands over more than MT_MAX_PACKET; clip anyway rather than trust it. */
    before_len = pkt->len < sizeof before ? pkt->len : sizeof before;
    memcpy(before, pkt->data, before_len);
    before_errors = script_errors;
}

/* Appends to out (always terminated), tracking where the text ends. */
static void add(char *out, size_t outsz, size_t *at, const char *fmt, ...)
{
    if (*at >= outsz)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *at, outsz - *at, fmt, ap);
    va_end(ap);
    if (n > 0)
        *at = (size_t)n < outsz - *at ? *at + (size_t)n : outsz;
}

static void ip_text(const uint8_t *p, int ver, char *out, size_t outsz)
{
    if (inet_ntop(ver == 4 ? AF_INET : AF_INET6, p, out, (socklen_t)outsz) == NULL)
        snprintf(out, outsz, "?");
}

static unsigned tos_of(const uint8_t *p, const struct mt_hdrs *h)
{
    const uint8_t *ip = p + h->l3;
    return h->ipver == 4 ? ip[1] : (unsigned)((ip[0] & 0x0f) << 4 | ip[1] >> 4);
}

/* One field that differs, as "name OLD->NEW" in the format given. */
#define FIELD(name, fmt, x, y)                                                                     \
    do {                                                                                           \
        if ((x) != (y))                                                                            \
            add(out, outsz, &at, "%s" name " " fmt "->" fmt, at > 0 ? ", " : "", (x), (y));        \
    } while (0)

void mt_trace_diff(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, enum mt_link link,
                   char *out, size_t outsz)
{
    size_t at = 0;
    out[0] = '\0';
    if (alen == blen && memcmp(a, b, alen) == 0)
        return;
    struct mt_hdrs ha, hb;
    mt_proto_parse(a, alen, link, &ha);
    mt_proto_parse(b, blen, link, &hb);
    /* Field by field only when both are IP packets of one version and transport: otherwise
     * the script made another packet of it, and "rewritten" says so. */
    if (ha.l3 >= 0 && hb.l3 >= 0 && ha.ipver == hb.ipver) {
        const uint8_t *ia = a + ha.l3, *ib = b + hb.l3;
        int v4 = ha.ipver == 4, alen_ = v4 ? 4 : 16, aoff = v4 ? 12 : 8;
        FIELD("tos", "0x%02x", tos_of(a, &ha), tos_of(b, &hb));
        FIELD("ttl", "%u", (unsigned)ia[v4 ? 8 : 7], (unsigned)ib[v4 ? 8 : 7]);
        for (int k = 0; k < 2; k++) {
            const uint8_t *x = ia + aoff + k * alen_, *y = ib + aoff + k * alen_;
            if (memcmp(x, y, (size_t)alen_) != 0) {
                char sx[48], sy[48];
                ip_text(x, ha.ipver, sx, sizeof sx);
                ip_text(y, ha.ipver, sy, sizeof sy);
                add(out, outsz, &at, "%s%s %s->%s", at > 0 ? ", " : "", k ? "dst" : "src", sx, sy);
            }
        }
        if (ha.l4 >= 0 && hb.l4 >= 0 && ha.l4proto == hb.l4proto &&
            (ha.l4proto == MT_IPPROTO_TCP || ha.l4proto == MT_IPPROTO_UDP)) {
            const uint8_t *ta = a + ha.l4, *tb = b + hb.l4;
            FIELD("sport", "%u", (unsigned)(ta[0] << 8 | ta[1]), (unsigned)(tb[0] << 8 | tb[1]));
            FIELD("dport", "%u", (unsigned)(ta[2] << 8 | ta[3]), (unsigned)(tb[2] << 8 | tb[3]));
            if (ha.l4proto == MT_IPPROTO_TCP)
                FIELD("tcp flags", "0x%02x", (unsigned)ta[13], (unsigned)tb[13]);
        }
    }
    if (at == 0)
        add(out, outsz, &at, "rewritten");
    if (alen != blen)
        add(out, outsz, &at, ", length %zu->%zu", alen, blen);
}

void mt_trace_end(const char *what, const struct mt_packet *pkt, enum mt_verdict v,
                  const struct mt_peer *route, const struct mt_scripts *s, uint64_t script_errors)
{
    static const char *const names[] = {"pass", "drop", "reply", "route"};
    char sum[256], by[160] = "", changes[256];
    mt_proto_summary(before, before_len, pkt->link, sum, sizeof sum);
    const char *hook = NULL, *who = mt_scripts_decider(s, &hook);
    if (who != NULL) {
        int line = mt_scripts_decider_line(s);
        if (line > 0)
            snprintf(by, sizeof by, " by %s:%d %s", who, line, hook);
        else
            snprintf(by, sizeof by, " by %s %s", who, hook);
    }
    mt_trace_diff(before, before_len, pkt->data, pkt->len, pkt->link, changes, sizeof changes);
    mt_log(MT_LOG_DEBUG, "%s %s => %s%s%s%s%s%s%s", what, sum, (unsigned)v < 4 ? names[v] : "?",
           v == MT_VERDICT_ROUTE && route ? " " : "",
           v == MT_VERDICT_ROUTE && route ? route->name : "", by,
           script_errors != before_errors ? " (script error)" : "", changes[0] ? "; " : "",
           changes);
}
