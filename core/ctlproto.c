/* The control socket's line protocol: request words, reply header, reply buffer (see
 * ctlproto.h). No sockets here. */
#include "ctlproto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_ctl_split(char *line, size_t len, char **words, int max)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    int n = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)line[i];
        if (c == ' ') {
            line[i++] = '\0';
            continue;
        }
        if (c < 0x21 || c > 0x7e) /* controls, NUL, bytes of binary garbage */
            return -EINVAL;
        if (n == max)
            return -E2BIG;
        words[n++] = &line[i];
        while (i < len && line[i] != ' ') {
            c = (unsigned char)line[i];
            if (c < 0x21 || c > 0x7e)
                return -EINVAL;
            i++;
        }
    }
    line[len] = '\0'; /* the caller's buffer holds len + 1 bytes */
    return n;
}

int mt_ctl_parse_header(const char *line, size_t *len, const char **msg)
{
    if (strncmp(line, "error ", 6) == 0) {
        *msg = line + 6;
        return 1;
    }
    if (strncmp(line, "ok ", 3) != 0)
        return -EPROTO;
    const char *p = line + 3;
    size_t v = 0;
    if (*p == '\0')
        return -EPROTO;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EPROTO;
        /* a liar sends twenty digits: stop before the value passes the cap */
        v = v * 10 + (size_t)(*p - '0');
        if (v > MT_CTL_REPLY_MAX)
            return -EPROTO;
    }
    *len = v;
    return 0;
}

int mt_ctl_parse_hostport(const char *text, struct sockaddr_storage *ss, unsigned *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host || colon == text)
        return -EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 1 || port > 65535)
        return -EINVAL;
    struct sockaddr_storage tmp;
    memset(&tmp, 0, sizeof tmp);
    unsigned l;
    size_t hl = strlen(host);
    if (host[0] == '[') {
        if (hl < 3 || host[hl - 1] != ']')
            return -EINVAL;
        host[hl - 1] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&tmp;
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return -EINVAL;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        l = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&tmp;
        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return -EINVAL;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        l = sizeof *s4;
    }
    if (ss)
        *ss = tmp;
    if (len)
        *len = l;
    return 0;
}

void mt_buf_init(struct mt_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void mt_buf_free(struct mt_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Room for n more bytes (and a NUL), or false once the cap is reached. */
static bool reserve(struct mt_buf *b, size_t n)
{
    if (b->overflow || n > b->max - b->len || n + 1 > b->max - b->len) {
        b->overflow = true;
        return false;
    }
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->overflow = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void mt_buf_add(struct mt_buf *b, const void *data, size_t len)
{
    if (!reserve(b, len))
        return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void mt_buf_vprintf(struct mt_buf *b, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0 || !reserve(b, (size_t)n))
        return;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void mt_buf_printf(struct mt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mt_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void mt_buf_json(struct mt_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            mt_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f) /* bytes of another charset: still valid JSON */
            mt_buf_printf(b, "\\u%04x", c);
        else
            mt_buf_add(b, s, 1);
    }
}

void mt_buf_label(struct mt_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            mt_buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            mt_buf_add(b, "\\n", 2);
        else
            mt_buf_add(b, s, 1);
    }
}
