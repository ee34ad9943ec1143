/* mt.packet{...}: builds a packet from named fields, Scapy style, for scripts (replies,
 * mt.inject, mt.send) and for tests (input packets). Reads the whole spec into a C struct
 * first, then writes the bytes once; lengths come from what is there and the checksums from
 * core/proto.c, so a packet is right unless the spec asks for a lie (len, off, csum). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "bytes.h"
#include "binding.h"
#include "moontun/addr.h"
#include "moontun/packet.h"
#include "moontun/proto.h"

#define IP4_HLEN  20
#define IP6_HLEN  40
#define TCP_HLEN  20
#define UDP_HLEN  8
#define ICMP_HLEN 8
#define NO_VALUE  (-1) /* an optional field the spec left out */

struct spec {
    bool has_eth, has_ip, v6;
    uint8_t eth_src[6], eth_dst[6];
    long eth_type, vlan;
    uint8_t src[16], dst[16];
    long ttl, tos, id, flow, proto, ip_len, ip_csum, frag;
    bool df, mf;
    const char *ip_opts;
    size_t ip_opts_len;
    int l4; /* MT_IPPROTO_TCP/UDP/ICMP/ICMP6, or 0: raw payload */
    long sport, dport, seq, ack, flags, window, urg, mss, off, l4_len, l4_csum;
    long type, code, echo_id, echo_seq, mtu;
    const char *tcp_opts;
    size_t tcp_opts_len;
    const char *payload;
    size_t payload_len; /* with payload NULL: that many zero bytes */
};

/* Raises unless every key of the table at idx is one of names: a typo (`tpc`, `dprot`) is an
 * error naming it, not a field silently left at its default. */
static void check_keys(lua_State *L, int idx, const char *what, const char *const *names)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        bool ok = false;
        for (int i = 0; k != NULL && names[i] != NULL && !ok; i++)
            ok = strcmp(k, names[i]) == 0;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; names[i] != NULL; i++) {
                luaL_addstring(&b, i > 0 ? " " : "");
                luaL_addstring(&b, names[i]);
            }
            luaL_pushresult(&b);
            luaL_error(L, "mt.packet: unknown field %s.%s (fields: %s)", what,
                       k != NULL ? k : luaL_typename(L, -2), lua_tostring(L, -1));
        }
    }
}

/* The subtable spec[key] at the top of the stack, or false with nothing pushed. */
static bool get_table(lua_State *L, int spec, const char *key)
{
    int t = lua_getfield(L, spec, key);
    if (t == LUA_TTABLE)
        return true;
    if (t != LUA_TNIL)
        luaL_error(L, "mt.packet: %s must be a table, not a %s", key, luaL_typename(L, -1));
    lua_pop(L, 1);
    return false;
}

static long opt_int(lua_State *L, int t, const char *what, const char *key, long def, long min,
                    long max)
{
    long v = def;
    if (lua_getfield(L, t, key) != LUA_TNIL) {
        int isnum;
        lua_Integer n = lua_tointegerx(L, -1, &isnum);
        if (!isnum || n < min || n > max)
            luaL_error(L, "mt.packet: %s.%s must be an integer in %d..%d", what, key, (int)min,
                       (int)max);
        v = (long)n;
    }
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static const char *opt_bytes(lua_State *L, int t, const char *what, const char *key, size_t *len)
{
    *len = 0;
    int type = lua_getfield(L, t, key);
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (type != LUA_TSTRING)
        luaL_error(L, "mt.packet: %s.%s must be a string of bytes", what, key);
    /* The string stays alive in the spec table, which the caller holds for the whole call. */
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1);
    return s;
}

/* An address field: IPv4 or IPv6 text. Returns 4 or 6, or 0 when absent. */
static int opt_addr(lua_State *L, int t, const char *key, uint8_t out[16])
{
    if (lua_getfield(L, t, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    const char *text = lua_tostring(L, -1);
    struct mt_addr a;
    int ver = text != NULL && mt_addr_parse(text, &a) == 0 ? a.kind : 0;
    if (ver != 0)
        memcpy(out, a.b, ver == 4 ? 4 : 16);
    else
        luaL_error(L, "mt.packet: ip.%s: '%s' is not an IPv4 or IPv6 address", key,
                   text != NULL ? text : luaL_typename(L, -1));
    lua_pop(L, 1);
    return ver;
}

static void opt_mac(lua_State *L, int t, const char *key, const char *def, uint8_t out[6])
{
    lua_getfield(L, t, key);
    const char *text = lua_isnil(L, -1) ? def : lua_tostring(L, -1);
    unsigned m[6];
    char extra;
    if (text == NULL || sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4],
                               &m[5], &extra) != 6)
        luaL_error(L, "mt.packet: eth.%s: '%s' is not a MAC address (aa:bb:cc:dd:ee:ff)", key,
                   text != NULL ? text : luaL_typename(L, -1));
    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)m[i];
    lua_pop(L, 1);
}

/* TCP flags as tcpdump prints them ("S", "SA", "FA", "R", "." for a bare ACK) or a number. */
static long opt_flags(lua_State *L, int t)
{
    static const char letters[] = "FSRPAUEC";
    long v = 0x02; /* SYN, as Scapy: the first packet of a connection */
    int type = lua_getfield(L, t, "flags");
    if (type == LUA_TNUMBER) {
        int isnum;
        lua_Integer n = lua_tointegerx(L, -1, &isnum);
        if (!isnum || n < 0 || n > 0xff)
            luaL_error(L, "mt.packet: tcp.flags must be letters (\"SA\") or 0..255");
        v = (long)n;
    } else if (type == LUA_TSTRING) {
        v = 0;
        for (const char *p = lua_tostring(L, -1); *p; p++) {
            const char *at = *p == '.' ? letters + 4 : strchr(letters, *p);
            if (at == NULL || *p == '\0')
                luaL_error(L, "mt.packet: tcp.flags: '%c' is not one of F S R P A U E C .", *p);
            v |= 1L << (at - letters);
        }
    } else if (type != LUA_TNIL) {
        luaL_error(L, "mt.packet: tcp.flags must be letters (\"SA\") or a number");
    }
    lua_pop(L, 1);
    return v;
}

static const char *const spec_keys[] = {"eth", "ip", "tcp", "udp", "icmp", "payload", NULL};
static const char *const eth_keys[] = {"src", "dst", "type", "vlan", NULL};
static const char *const ip_keys[] = {"src", "dst", "ttl", "tos",  "id",   "flow",    "proto",
                                      "len", "df",  "mf",  "frag", "csum", "options", NULL};
static const char *const tcp_keys[] = {"sport", "dport", "seq",     "ack", "flags", "window",
                                       "urg",   "mss",   "options", "off", "csum",  NULL};
static const char *const udp_keys[] = {"sport", "dport", "len", "csum", NULL};
static const char *const icmp_keys[] = {"type", "code", "id", "seq", "mtu", "csum", NULL};

static void read_ip(lua_State *L, int t, struct spec *s)
{
    check_keys(L, t, "ip", ip_keys);
    int vs = opt_addr(L, t, "src", s->src), vd = opt_addr(L, t, "dst", s->dst);
    if (vs != 0 && vd != 0 && vs != vd)
        luaL_error(L, "mt.packet: ip.src and ip.dst must be both IPv4 or both IPv6");
    s->v6 = vs == 6 || vd == 6;
    /* Defaults: 10.0.0.1 > 10.0.0.2, or fd00::1 > fd00::2 */
    static const uint8_t v4[4] = {10, 0, 0, 0}, v6[16] = {0xfd};
    if (vs == 0) {
        memcpy(s->src, s->v6 ? v6 : v4, s->v6 ? 16 : 4);
        s->src[s->v6 ? 15 : 3] = 1;
    }
    if (vd == 0) {
        memcpy(s->dst, s->v6 ? v6 : v4, s->v6 ? 16 : 4);
        s->dst[s->v6 ? 15 : 3] = 2;
    }
    s->ttl = opt_int(L, t, "ip", "ttl", 64, 0, 255);
    s->tos = opt_int(L, t, "ip", "tos", 0, 0, 255);
    s->id = opt_int(L, t, "ip", "id", 0, 0, s->v6 ? 0xfffff : 0xffff);
    s->flow = opt_int(L, t, "ip", "flow", s->id, 0, 0xfffff); /* IPv6: id is the flow label */
    s->proto = opt_int(L, t, "ip", "proto", NO_VALUE, 0, 255);
    s->ip_len = opt_int(L, t, "ip", "len", NO_VALUE, 0, 0xffff);
    s->ip_csum = opt_int(L, t, "ip", "csum", NO_VALUE, 0, 0xffff);
    s->frag = opt_int(L, t, "ip", "frag", 0, 0, 0xfff8);
    if (s->frag % 8 != 0)
        luaL_error(L, "mt.packet: ip.frag is a byte offset and must be a multiple of 8");
    s->df = opt_bool(L, t, "df");
    s->mf = opt_bool(L, t, "mf");
    s->ip_opts = opt_bytes(L, t, "ip", "options", &s->ip_opts_len);
    if (s->ip_opts_len > 40 || (s->v6 && s->ip_opts_len > 0))
        luaL_error(L, "mt.packet: ip.options: at most 40 bytes, IPv4 only");
}

static void read_l4(lua_State *L, int spec, struct spec *s)
{
    int found = 0;
    if (get_table(L, spec, "tcp")) {
        int t = lua_gettop(L);
        check_keys(L, t, "tcp", tcp_keys);
        s->l4 = MT_IPPROTO_TCP;
        s->sport = opt_int(L, t, "tcp", "sport", 40000, 0, 65535);
        s->dport = opt_int(L, t, "tcp", "dport", 80, 0, 65535);
        s->seq = opt_int(L, t, "tcp", "seq", 0, 0, 0xffffffffL);
        s->ack = opt_int(L, t, "tcp", "ack", 0, 0, 0xffffffffL);
        s->flags = opt_flags(L, t);
        s->window = opt_int(L, t, "tcp", "window", 65535, 0, 65535);
        s->urg = opt_int(L, t, "tcp", "urg", 0, 0, 65535);
        s->mss = opt_int(L, t, "tcp", "mss", NO_VALUE, 0, 65535);
        s->tcp_opts = opt_bytes(L, t, "tcp", "options", &s->tcp_opts_len);
        s->off = opt_int(L, t, "tcp", "off", NO_VALUE, 0, 15);
        s->l4_csum = opt_int(L, t, "tcp", "csum", NO_VALUE, 0, 0xffff);
        if (s->tcp_opts_len + (s->mss >= 0 ? 4 : 0) > 40)
            luaL_error(L, "mt.packet: tcp options (with mss) must fit in 40 bytes");
        lua_pop(L, 1);
        found++;
    }
    if (get_table(L, spec, "udp")) {
        int t = lua_gettop(L);
        check_keys(L, t, "udp", udp_keys);
        s->l4 = MT_IPPROTO_UDP;
        s->sport = opt_int(L, t, "udp", "sport", 40000, 0, 65535);
        s->dport = opt_int(L, t, "udp", "dport", 53, 0, 65535);
        s->l4_len = opt_int(L, t, "udp", "len", NO_VALUE, 0, 65535);
        s->l4_csum = opt_int(L, t, "udp", "csum", NO_VALUE, 0, 0xffff);
        lua_pop(L, 1);
        found++;
    }
    if (get_table(L, spec, "icmp")) {
        int t = lua_gettop(L);
        check_keys(L, t, "icmp", icmp_keys);
        s->l4 = s->v6 ? MT_IPPROTO_ICMP6 : MT_IPPROTO_ICMP;
        s->type = opt_int(L, t, "icmp", "type", s->v6 ? 128 : 8, 0, 255); /* echo request */
        s->code = opt_int(L, t, "icmp", "code", 0, 0, 255);
        s->echo_id = opt_int(L, t, "icmp", "id", 0, 0, 65535);
        s->echo_seq = opt_int(L, t, "icmp", "seq", 0, 0, 65535);
        s->mtu = opt_int(L, t, "icmp", "mtu", NO_VALUE, 0, 0xffffffffL);
        s->l4_csum = opt_int(L, t, "icmp", "csum", NO_VALUE, 0, 0xffff);
        lua_pop(L, 1);
        found++;
    }
    if (found > 1)
        luaL_error(L, "mt.packet: give at most one of tcp, udp and icmp");
    if (found > 0 && !s->has_ip)
        luaL_error(L, "mt.packet: tcp, udp and icmp need an ip table (ip = {} for defaults)");
}

static void read_spec(lua_State *L, struct spec *s)
{
    memset(s, 0, sizeof *s);
    s->eth_type = s->vlan = s->proto = s->ip_len = s->ip_csum = NO_VALUE;
    s->mss = s->off = s->l4_len = s->l4_csum = s->mtu = NO_VALUE;
    check_keys(L, 1, "packet", spec_keys);
    if (get_table(L, 1, "eth")) {
        int t = lua_gettop(L);
        check_keys(L, t, "eth", eth_keys);
        s->has_eth = true;
        opt_mac(L, t, "src", "02:00:00:00:00:01", s->eth_src);
        opt_mac(L, t, "dst", "02:00:00:00:00:02", s->eth_dst);
        s->eth_type = opt_int(L, t, "eth", "type", NO_VALUE, 0, 0xffff);
        s->vlan = opt_int(L, t, "eth", "vlan", NO_VALUE, 0, 4095);
        lua_pop(L, 1);
    }
    if (get_table(L, 1, "ip")) {
        s->has_ip = true;
        read_ip(L, lua_gettop(L), s);
        lua_pop(L, 1);
    }
    read_l4(L, 1, s);
    int t = lua_getfield(L, 1, "payload");
    if (t == LUA_TSTRING) {
        s->payload = lua_tolstring(L, -1, &s->payload_len);
    } else if (t == LUA_TNUMBER) {
        int isnum;
        lua_Integer n = lua_tointegerx(L, -1, &isnum);
        if (!isnum || n < 0 || n > MT_MAX_PACKET)
            luaL_error(L, "mt.packet: payload must be bytes or a length (0..%d)", MT_MAX_PACKET);
        s->payload_len = (size_t)n;
    } else if (t != LUA_TNIL) {
        luaL_error(L, "mt.packet: payload must be a string or a length, not a %s",
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    if (!s->has_eth && !s->has_ip)
        luaL_error(L, "mt.packet: needs an ip table (and eth for a tap frame)");
}

/* The lengths of each part; 0 for an absent one. */
struct layout {
    size_t eth, ip, l4, opts, total;
};

static void plan(lua_State *L, const struct spec *s, struct layout *o)
{
    memset(o, 0, sizeof *o);
    o->eth = s->has_eth ? MT_ETH_HLEN + (s->vlan >= 0 ? 4 : 0) : 0;
    if (s->has_ip)
        o->ip = s->v6 ? IP6_HLEN : IP4_HLEN + (s->ip_opts_len + 3) / 4 * 4;
    if (s->l4 == MT_IPPROTO_TCP) {
        o->opts = ((s->mss >= 0 ? 4 : 0) + s->tcp_opts_len + 3) / 4 * 4;
        o->l4 = TCP_HLEN + o->opts;
    } else if (s->l4 == MT_IPPROTO_UDP) {
        o->l4 = UDP_HLEN;
    } else if (s->l4 != 0) {
        o->l4 = ICMP_HLEN;
    }
    /* Every part is bounded above (payload by MT_MAX_PACKET), so the sum cannot wrap. */
    o->total = o->eth + o->ip + o->l4 + s->payload_len;
    if (o->total > MT_MAX_PACKET)
        luaL_error(L, "mt.packet: %d bytes is over the largest packet (%d)", (int)o->total,
                   MT_MAX_PACKET);
}

static void write_eth(uint8_t *p, const struct spec *s)
{
    memcpy(p, s->eth_dst, 6);
    memcpy(p + 6, s->eth_src, 6);
    long type = s->eth_type >= 0 ? s->eth_type
                : !s->has_ip     ? 0x88b5 /* IEEE local experimental */
                : s->v6          ? MT_ETHERTYPE_IP6
                                 : MT_ETHERTYPE_IP4;
    uint8_t *tp = p + 12;
    if (s->vlan >= 0) {
        wr16(tp, MT_ETHERTYPE_VLAN);
        wr16(tp + 2, (uint16_t)s->vlan);
        tp += 4;
    }
    wr16(tp, (uint16_t)type);
}

static void write_ip(uint8_t *p, const struct spec *s, const struct layout *o)
{
    uint8_t proto = s->proto >= 0 ? (uint8_t)s->proto : s->l4 != 0 ? (uint8_t)s->l4 : 253;
    size_t l3len = o->ip + o->l4 + s->payload_len;
    if (s->v6) {
        wr32(p, 0x60000000u | (uint32_t)s->tos << 20 | (uint32_t)s->flow);
        wr16(p + 4, (uint16_t)(l3len - IP6_HLEN));
        p[6] = proto;
        p[7] = (uint8_t)s->ttl;
        memcpy(p + 8, s->src, 16);
        memcpy(p + 24, s->dst, 16);
        return;
    }
    p[0] = (uint8_t)(0x40 | o->ip / 4);
    p[1] = (uint8_t)s->tos;
    wr16(p + 2, (uint16_t)l3len);
    wr16(p + 4, (uint16_t)s->id);
    wr16(p + 6, (uint16_t)((s->df ? 0x4000 : 0) | (s->mf ? 0x2000 : 0) | s->frag / 8));
    p[8] = (uint8_t)s->ttl;
    p[9] = proto;
    memcpy(p + 12, s->src, 4);
    memcpy(p + 16, s->dst, 4);
    if (s->ip_opts_len > 0)
        memcpy(p + IP4_HLEN, s->ip_opts, s->ip_opts_len); /* padded with zeros (EOL) */
}

static void write_l4(uint8_t *p, const struct spec *s, const struct layout *o)
{
    if (s->l4 == MT_IPPROTO_TCP) {
        wr16(p, (uint16_t)s->sport);
        wr16(p + 2, (uint16_t)s->dport);
        wr32(p + 4, (uint32_t)s->seq);
        wr32(p + 8, (uint32_t)s->ack);
        p[12] = (uint8_t)(o->l4 / 4 << 4);
        p[13] = (uint8_t)s->flags;
        wr16(p + 14, (uint16_t)s->window);
        wr16(p + 18, (uint16_t)s->urg);
        uint8_t *opt = p + TCP_HLEN;
        if (s->mss >= 0) {
            opt[0] = 2; /* kind MSS, length 4 */
            opt[1] = 4;
            wr16(opt + 2, (uint16_t)s->mss);
            opt += 4;
        }
        if (s->tcp_opts_len > 0)
            memcpy(opt, s->tcp_opts, s->tcp_opts_len); /* padded with zeros (end of list) */
    } else if (s->l4 == MT_IPPROTO_UDP) {
        wr16(p, (uint16_t)s->sport);
        wr16(p + 2, (uint16_t)s->dport);
        wr16(p + 4, (uint16_t)(o->l4 + s->payload_len));
        wr16(p + 6, 0xffff); /* not 0, which proto.c keeps as "no checksum" */
    } else if (s->l4 != 0) {
        p[0] = (uint8_t)s->type;
        p[1] = (uint8_t)s->code;
        if (s->mtu >= 0 && s->v6) {
            wr32(p + 4, (uint32_t)s->mtu); /* packet too big: the whole word */
        } else {
            wr16(p + 4, (uint16_t)s->echo_id);
            wr16(p + 6, (uint16_t)(s->mtu >= 0 ? s->mtu : s->echo_seq));
        }
    }
}

/* What the spec asked to be wrong, applied after the checksums so the lie is the only fault:
 * a length field rewritten keeps its header's checksum right (RFC 1624), an explicit csum
 * replaces the computed one. */
static void write_lies(uint8_t *ip, const struct spec *s, const struct layout *o)
{
    uint8_t *l4 = ip + o->ip;
    if (s->ip_len >= 0) {
        uint8_t *field = ip + (s->v6 ? 4 : 2);
        uint16_t old = rd16(field);
        wr16(field, (uint16_t)s->ip_len);
        if (!s->v6)
            wr16(ip + 10, mt_csum_update16(rd16(ip + 10), old, (uint16_t)s->ip_len));
    }
    if (s->ip_csum >= 0 && !s->v6)
        wr16(ip + 10, (uint16_t)s->ip_csum);
    size_t csum_at = s->l4 == MT_IPPROTO_TCP ? 16 : s->l4 == MT_IPPROTO_UDP ? 6 : 2;
    if (s->l4 == MT_IPPROTO_TCP && s->off >= 0) {
        uint16_t old = rd16(l4 + 12);
        l4[12] = (uint8_t)(s->off << 4 | (l4[12] & 0x0f));
        wr16(l4 + 16, mt_csum_update16(rd16(l4 + 16), old, rd16(l4 + 12)));
    }
    if (s->l4 == MT_IPPROTO_UDP && s->l4_len >= 0) {
        uint16_t old = rd16(l4 + 4);
        wr16(l4 + 4, (uint16_t)s->l4_len);
        wr16(l4 + 6, mt_csum_update16(rd16(l4 + 6), old, (uint16_t)s->l4_len));
    }
    if (s->l4 != 0 && s->l4_csum >= 0)
        wr16(l4 + csum_at, (uint16_t)s->l4_csum);
}

int mt__lbuild_packet(lua_State *L)
{
    struct spec s;
    struct layout o;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    read_spec(L, &s);
    plan(L, &s, &o);

    luaL_Buffer b;
    uint8_t *p = (uint8_t *)luaL_buffinitsize(L, &b, o.total > 0 ? o.total : 1);
    memset(p, 0, o.total);
    if (s.has_eth)
        write_eth(p, &s);
    uint8_t *ip = p + o.eth;
    if (s.has_ip) {
        write_ip(ip, &s, &o);
        write_l4(ip + o.ip, &s, &o);
    }
    if (s.payload != NULL)
        memcpy(ip + o.ip + o.l4, s.payload, s.payload_len);
    if (s.has_ip) {
        /* Fragments (and raw protocols) have no transport checksum to fix: that is fine. */
        (void)mt_proto_fix_checksums(ip, o.total - o.eth, MT_LINK_IP);
        write_lies(ip, &s, &o);
    }
    luaL_pushresultsize(&b, o.total);
    return 1;
}
