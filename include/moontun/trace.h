/* The -d live trace: one line per packet saying its fate (verdict, the script, hook and line
 * that decided) and what the scripts changed. Only called when the log level is DEBUG; the
 * core guards every call with that one branch, so without -d it costs nothing. */
#ifndef MOONTUN_TRACE_H
#define MOONTUN_TRACE_H

#include <stdint.h>

#include "moontun/packet.h"
#include "moontun/peer.h"
#include "moontun/script.h"

/* Before the hooks: remembers the packet as it arrived and the script error count. */
void mt_trace_begin(const struct mt_packet *pkt, uint64_t script_errors);
/* After the hooks: logs "<what> <summary as it arrived> => <verdict> [by SCRIPT:LINE hook]
 * [error] [; changes]". s may be NULL (no scripts). */
void mt_trace_end(const char *what, const struct mt_packet *pkt, enum mt_verdict v,
                  const struct mt_peer *route, const struct mt_scripts *s, uint64_t script_errors);
/* The changes between two versions of a packet, as "tos 0x00->0xb8, dst 10.0.0.9->10.0.0.1"
 * or "rewritten, length 40->44"; "" when the bytes are the same. For the trace and its tests. */
void mt_trace_diff(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, enum mt_link link,
                   char *out, size_t outsz);

#endif
