/* The wg(8) configuration parser: one line at a time, "Key = Value" in [Interface] or [Peer]
 * sections, '#' comments; keys are case-insensitive as in wg(8). Keys and values are checked
 * completely (strict base64, ranges, prefixes); the first error stops the parse. */
#include "wg/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "wg/key.h"

#define MAX_LINE 4096

enum section { NONE, INTERFACE, PEER };

struct parser {
    struct mt_wg_config *c;
    mt_wg_config_note note;
    void *ctx;
    char *err;
    size_t errlen;
    int line;
};

static int fail(struct parser *p, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (key)
        snprintf(p->err, p->errlen, "line %d: %s: %s", p->line, key, msg);
    else
        snprintf(p->err, p->errlen, "line %d: %s", p->line, msg);
    return -EINVAL;
}

static void notef(struct parser *p, const char *fmt, const char *key)
{
    char msg[160];
    if (!p->note)
        return;
    snprintf(msg, sizeof(msg), fmt, key);
    p->note(p->ctx, p->line, msg);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* A decimal number in [0, max], nothing else. */
static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (!*s || strlen(s) > 10)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static int parse_key(struct parser *p, const char *key, const char *val, uint8_t out[MT_WG_KEY_LEN])
{
    if (mt_wg_key_from_base64(out, val) < 0)
        return fail(p, key, "not a base64 key of 32 bytes (44 characters, as wg genkey writes)");
    return 0;
}

/* "a, b/c, ..." appended to *list. */
static int parse_prefixes(struct parser *p, const char *key, char *val, struct mt_wg_prefix **list,
                          size_t *n)
{
    for (char *save = NULL, *tok = strtok_r(val, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        struct mt_wg_prefix pre;
        char *t = trim(tok);
        if (!*t)
            continue;
        if (mt_wg_prefix_parse(&pre, t) < 0)
            return fail(p, key, "'%.64s' is not an address or prefix", t);
        struct mt_wg_prefix *l = realloc(*list, (*n + 1) * sizeof(*l));
        if (!l)
            return fail(p, key, "out of memory");
        l[(*n)++] = pre;
        *list = l;
    }
    return 0;
}

static int parse_endpoint(struct parser *p, struct mt_wg_config_peer *peer, const char *val)
{
    const char *colon = strrchr(val, ':'), *host = val;
    size_t hlen = colon ? (size_t)(colon - val) : 0;
    unsigned long port;
    if (!colon || !parse_uint(colon + 1, 65535, &port) || port == 0)
        return fail(p, "Endpoint", "'%.64s' is not host:port", val);
    if (hlen && host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']')
            return fail(p, "Endpoint", "'%.64s' is not [IPv6]:port", val);
        host++;
        hlen -= 2;
    } else if (memchr(host, ':', hlen)) {
        return fail(p, "Endpoint", "an IPv6 address needs brackets: [%.64s]:port", val);
    }
    if (!hlen || hlen >= sizeof(peer->endpoint_host))
        return fail(p, "Endpoint", "'%.64s' has no host or too long a host", val);
    memcpy(peer->endpoint_host, host, hlen);
    peer->endpoint_host[hlen] = '\0';
    peer->endpoint_port = (uint16_t)port;
    peer->has_endpoint = true;
    return 0;
}

static int interface_key(struct parser *p, const char *key, char *val)
{
    struct mt_wg_config *c = p->c;
    unsigned long v;
    if (!strcasecmp(key, "PrivateKey")) {
        c->has_priv = true;
        return parse_key(p, "PrivateKey", val, c->priv);
    }
    if (!strcasecmp(key, "ListenPort")) {
        if (!parse_uint(val, 65535, &v))
            return fail(p, "ListenPort", "'%.64s' is not a port (0-65535)", val);
        c->listen_port = (uint16_t)v;
        c->has_listen_port = true;
        return 0;
    }
    if (!strcasecmp(key, "Address"))
        return parse_prefixes(p, "Address", val, &c->addresses, &c->n_addresses);
    if (!strcasecmp(key, "MTU")) {
        if (!parse_uint(val, 65535, &v) || v < 68)
            return fail(p, "MTU", "'%.64s' is not an MTU (68-65535)", val);
        c->mtu = (unsigned)v;
        return 0;
    }
    if (!strcasecmp(key, "FwMark"))
        return notef(p, "%s ignored: moontun does not mark packets", "FwMark"), 0;
    static const char *const quick[] = {"DNS",     "Table",    "PreUp",     "PostUp",
                                        "PreDown", "PostDown", "SaveConfig"};
    for (size_t i = 0; i < sizeof(quick) / sizeof(quick[0]); i++)
        if (!strcasecmp(key, quick[i]))
            return notef(p, "%s ignored (a wg-quick setting)", quick[i]), 0;
    return fail(p, NULL, "unknown key '%.64s' in [Interface]", key);
}

static int peer_key(struct parser *p, struct mt_wg_config_peer *peer, const char *key, char *val)
{
    unsigned long v;
    if (!strcasecmp(key, "PublicKey")) {
        if (peer->has_pub)
            return fail(p, "PublicKey", "given twice in one [Peer]");
        peer->has_pub = true;
        return parse_key(p, "PublicKey", val, peer->pub);
    }
    if (!strcasecmp(key, "PresharedKey")) {
        peer->has_psk = true;
        return parse_key(p, "PresharedKey", val, peer->psk);
    }
    if (!strcasecmp(key, "AllowedIPs"))
        return parse_prefixes(p, "AllowedIPs", val, &peer->allowed, &peer->n_allowed);
    if (!strcasecmp(key, "Endpoint"))
        return parse_endpoint(p, peer, val);
    if (!strcasecmp(key, "PersistentKeepalive")) {
        if (!strcasecmp(val, "off"))
            v = 0;
        else if (!parse_uint(val, 65535, &v))
            return fail(p, "PersistentKeepalive", "'%.64s' is not off or 0-65535 seconds", val);
        peer->keepalive = (unsigned)v;
        return 0;
    }
    return fail(p, NULL, "unknown key '%.64s' in [Peer]", key);
}

/* "# Name = x" inside a [Peer]: the name that tools such as wg-quick front ends give it. */
static void comment_name(struct mt_wg_config_peer *peer, char *comment)
{
    char *s = trim(comment + 1), *eq = strchr(s, '=');
    if (!eq)
        return;
    *eq = '\0';
    if (strcasecmp(trim(s), "Name") != 0)
        return;
    snprintf(peer->name, sizeof(peer->name), "%s", trim(eq + 1));
}

static int finish_peer(struct parser *p, struct mt_wg_config_peer *peer)
{
    if (!peer->has_pub) {
        p->line = peer->line;
        return fail(p, NULL, "[Peer] without PublicKey");
    }
    for (size_t i = 0; i + 1 < p->c->n_peers; i++)
        if (mt_wg_equal(p->c->peers[i].pub, peer->pub, MT_WG_KEY_LEN)) {
            p->line = peer->line;
            return fail(p, "PublicKey", "the same peer as the one at line %d", p->c->peers[i].line);
        }
    return 0;
}

static int parse_line(struct parser *p, char *raw, enum section *sec)
{
    char *hash = strchr(raw, '#');
    if (hash) {
        if (*sec == PEER)
            comment_name(&p->c->peers[p->c->n_peers - 1], hash);
        *hash = '\0';
    }
    char *s = trim(raw);
    if (!*s)
        return 0;
    if (*s == '[') {
        if (*sec == PEER && finish_peer(p, &p->c->peers[p->c->n_peers - 1]) < 0)
            return -EINVAL;
        if (!strcasecmp(s, "[Interface]")) {
            *sec = INTERFACE;
            return 0;
        }
        if (strcasecmp(s, "[Peer]") != 0)
            return fail(p, NULL, "unknown section %.64s (only [Interface] and [Peer])", s);
        struct mt_wg_config_peer *l = realloc(p->c->peers, (p->c->n_peers + 1) * sizeof(*l));
        if (!l)
            return fail(p, NULL, "out of memory");
        p->c->peers = l;
        memset(&l[p->c->n_peers], 0, sizeof(*l));
        l[p->c->n_peers++].line = p->line;
        *sec = PEER;
        return 0;
    }
    char *eq = strchr(s, '=');
    if (!eq)
        return fail(p, NULL, "expected Key = Value, got '%.64s'", s);
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    if (!*key)
        return fail(p, NULL, "a value without a key");
    if (!*val)
        return fail(p, key, "no value");
    if (*sec == NONE)
        return fail(p, key, "outside any section ([Interface] or [Peer])");
    return *sec == INTERFACE ? interface_key(p, key, val)
                             : peer_key(p, &p->c->peers[p->c->n_peers - 1], key, val);
}

int mt_wg_config_parse(struct mt_wg_config *c, const char *text, size_t len, mt_wg_config_note note,
                       void *ctx, char *err, size_t errlen)
{
    struct parser p = {.c = c, .note = note, .ctx = ctx, .err = err, .errlen = errlen};
    enum section sec = NONE;
    char line[MAX_LINE + 1];
    int rc = 0;
    memset(c, 0, sizeof(*c));
    if (len > MT_WG_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "larger than %d bytes", MT_WG_CONFIG_MAX_BYTES);
        return -EINVAL;
    }
    for (size_t at = 0; at < len && rc == 0;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) : len - at;
        p.line++;
        if (n > MAX_LINE)
            rc = fail(&p, NULL, "longer than %d characters", MAX_LINE);
        else if (memchr(text + at, '\0', n))
            rc = fail(&p, NULL, "a NUL byte");
        else {
            memcpy(line, text + at, n);
            line[n] = '\0';
            rc = parse_line(&p, line, &sec);
        }
        at += n + 1;
    }
    mt_wg_wipe(line, sizeof(line));
    if (rc == 0 && sec == PEER)
        rc = finish_peer(&p, &c->peers[c->n_peers - 1]);
    if (rc == 0 && !c->has_priv) {
        snprintf(err, errlen, "no PrivateKey in [Interface]");
        rc = -EINVAL;
    }
    if (rc < 0)
        mt_wg_config_free(c);
    return rc;
}

int mt_wg_config_load(struct mt_wg_config *c, const char *path, mt_wg_config_note note, void *ctx,
                      char *err, size_t errlen)
{
    char inner[300];
    struct stat st;
    memset(c, 0, sizeof(*c));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MT_WG_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path,
                 MT_WG_CONFIG_MAX_BYTES);
        close(fd);
        return -EINVAL;
    }
    if ((st.st_mode & 0007) && note)
        note(ctx, 0, "the file is readable by others and holds a private key (chmod 600)");
    size_t len = (size_t)st.st_size, got = 0;
    char *text = malloc(len + 1);
    while (text && got < len) {
        ssize_t r = read(fd, text + got, len - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!text || got != len) {
        snprintf(err, errlen, "%s: cannot read it", path);
        free(text);
        return -EIO;
    }
    int rc = mt_wg_config_parse(c, text, len, note, ctx, inner, sizeof(inner));
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, inner);
    mt_wg_wipe(text, len);
    free(text);
    return rc;
}

void mt_wg_config_free(struct mt_wg_config *c)
{
    for (size_t i = 0; i < c->n_peers; i++)
        free(c->peers[i].allowed);
    if (c->peers)
        mt_wg_wipe(c->peers, c->n_peers * sizeof(*c->peers));
    free(c->peers);
    free(c->addresses);
    mt_wg_wipe(c, sizeof(*c));
}
