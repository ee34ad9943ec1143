/* The control socket's line protocol, the parts both ends share and that need no socket:
 * splitting a request line into words, the reply header, and a bounded growing buffer that
 * replies are written into. Pure: unit-tested in tests/unit/test_ctlproto.c.
 *
 * A request is one line of at most MT_CTL_LINE_MAX bytes (with its "\n"; a "\r" before it is
 * ignored): words of printable ASCII separated by spaces, at most MT_CTL_MAX_WORDS.
 * A reply is "ok LEN\n" followed by exactly LEN bytes, or "error MESSAGE\n". */
#ifndef MOONTUN_CORE_CTLPROTO_H
#define MOONTUN_CORE_CTLPROTO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define MT_CTL_LINE_MAX  4096
#define MT_CTL_MAX_WORDS 32
#define MT_CTL_REPLY_MAX (16u << 20) /* no reply is longer: a liar's LEN is refused */

/* Splits line (len bytes, without its "\n", in a buffer of len + 1; modified in place) into words.
 * Returns the number of words (0 for a blank line), or -EINVAL (a byte that is not printable
 * ASCII), -E2BIG (more than max words). */
int mt_ctl_split(char *line, size_t len, char **words, int max);

/* Parses a reply header line (without "\n"). Returns 0 with *len set for "ok LEN", 1 with
 * *msg pointing at the message for "error MESSAGE", -EPROTO for anything else (a LEN that is
 * not a decimal number of at most MT_CTL_REPLY_MAX). */
int mt_ctl_parse_header(const char *line, size_t *len, const char **msg);

struct sockaddr_storage;
/* Parses "ADDR:PORT" with a numeric IPv4 address or a bracketed IPv6 one ("[::1]:9586"),
 * PORT 1-65535, into *ss and *len (both may be NULL: only check). 0 or -EINVAL. */
int mt_ctl_parse_hostport(const char *text, struct sockaddr_storage *ss, unsigned *len);

/* A reply being written: grows up to max bytes, then stops and remembers it overflowed. */
struct mt_buf {
    char *data;
    size_t len, cap, max;
    bool overflow;
};
void mt_buf_init(struct mt_buf *b, size_t max);
void mt_buf_free(struct mt_buf *b);
void mt_buf_printf(struct mt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mt_buf_vprintf(struct mt_buf *b, const char *fmt, va_list ap);
void mt_buf_add(struct mt_buf *b, const void *data, size_t len);
/* Appends s as the inside of a JSON string (quotes, backslashes and controls escaped). */
void mt_buf_json(struct mt_buf *b, const char *s);
/* Appends s as a Prometheus label value (backslash, quote and newline escaped). */
void mt_buf_label(struct mt_buf *b, const char *s);

#endif
