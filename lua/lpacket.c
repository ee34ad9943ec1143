/* The packet userdata and its header views (pkt.eth pkt.ip pkt.tcp pkt.udp pkt.icmp): Lua's
 * window onto a packet in the core's buffer. The chain makes one userdata per slot, binds it for
 * a handler call and expires it afterwards; the views are made once with it, so nothing here
 * allocates per packet. Header writes fix the checksums they touch incrementally (RFC 1624). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "binding.h"
#include "bytes.h"
#include "moontun/addr.h"
#include "moontun/proto.h"
#include "moontun/vnet.h"

#define MT_LVIEW_META "moontun.header"

#define EXPIRED_MSG                                                                                \
    "attempt to use an expired packet (packets are valid only during the handler call)"

enum view { V_ETH, V_IP, V_TCP, V_UDP, V_ICMP, V_COUNT };

static const char *const view_names[V_COUNT] = {"eth", "ip", "tcp", "udp", "icmp"};

#define ADDR_SLOTS 32 /* address texts the ip view keeps (a power of 2) */

struct lpacket {
    struct mt_packet *pkt; /* NULL when expired */
    bool parsed;           /* the fields below describe pkt's current bytes */
    uint8_t ipver;         /* 4, 6, or 0 when there is no usable IP header */
    uint8_t l4proto;       /* final protocol number (after IPv6 extension headers) */
    uint32_t l3hlen;       /* IP header plus IPv6 extension headers */
    int32_t off[V_COUNT];  /* where each view's header starts; -1 when absent */
    /* The last address text assigned to ip.src/ip.dst and what it parsed to: a NAT writes the
     * same address into every packet, and inet_pton cost it 190 instructions a packet. */
    uint8_t set_len; /* 0: none yet */
    char set_text[MT_ADDR_STRLEN];
    struct mt_addr set_addr;
    /* The addresses whose text the ip view keeps in its user values (push_addr_cached). */
    struct {
        uint8_t ver; /* 0: empty */
        uint8_t b[16];
    } addr_cache[ADDR_SLOTS];
};

struct lview {
    struct lpacket *lp; /* the packet userdata, kept alive by this view's uservalue */
    enum view kind;
};

/* Field names of the packet and the views, mapped to these codes by a table in an upvalue so
 * that a lookup is one hash probe on an interned string. */
enum pfield { P_DIR = 1, P_PEER, P_ETH, P_IP, P_TCP, P_UDP, P_ICMP };
static const char *const pfield_names[] = {NULL, "dir", "peer", "eth", "ip", "tcp", "udp", "icmp"};

enum vfield {
    F_SRC = 1,
    F_DST,
    F_TYPE,
    F_VERSION,
    F_HLEN,
    F_TOS,
    F_LEN,
    F_ID,
    F_TTL,
    F_PROTO,
    F_SPORT,
    F_DPORT,
    F_SEQ,
    F_ACK,
    F_FLAGS,
    F_WINDOW,
    F_CODE,
    F_DSCP,
    F_ECN,
    F_OFF,
    F_COUNT
};
static const char *const vfield_names[F_COUNT] = {
    NULL,    "src",   "dst", "type", "version", "hlen",   "tos",  "len",  "id",  "ttl", "proto",
    "sport", "dport", "seq", "ack",  "flags",   "window", "code", "dscp", "ecn", "off"};

/* Reading a field another view has is an error naming the view's fields (a script reading
 * pkt.ip.dport has a bug that nil would hide). */
static const char *const view_field_list[V_COUNT] = {
    "src dst type off",
    "version hlen tos dscp ecn len id ttl proto src dst off",
    "sport dport seq ack flags window hlen off",
    "sport dport len off",
    "type code id seq off",
};

/* --- parsing ------------------------------------------------------------------------------ */

/* Works out which views the current bytes support from the headers the packet carries
 * (parsed once, by proto.c); the checks here are what a view needs before it touches a byte,
 * so a liar's packet (total length beyond the packet, IHL beyond the total length or below 5,
 * a TCP data offset past the end) gets nil views instead of reads out of bounds. */
static void parse(struct lpacket *lp)
{
    struct mt_packet *pkt = lp->pkt;
    const uint8_t *p = pkt->data;
    size_t len = pkt->len;
    const struct mt_hdrs h = *mt_packet_hdrs(pkt);

    for (int i = 0; i < V_COUNT; i++)
        lp->off[i] = -1;
    lp->ipver = 0;
    lp->l4proto = 0;
    lp->l3hlen = 0;
    lp->parsed = true;

    if (pkt->link == MT_LINK_ETH && h.l2 >= 0 && (size_t)h.l2 <= len &&
        MT_ETH_HLEN <= len - (size_t)h.l2)
        lp->off[V_ETH] = h.l2;

    if (h.l3 < 0 || (size_t)h.l3 > len)
        return;
    size_t l3 = (size_t)h.l3, avail = len - l3, ipend, hlen;
    const uint8_t *ip = p + l3;
    if (avail >= 20 && ip[0] >> 4 == 4) {
        size_t ihl = (size_t)(ip[0] & 0x0f) * 4, tot = rd16(ip + 2);
        /* IHL < 5, IHL past the total length, or a total length past what arrived */
        if (ihl < 20 || tot < ihl || tot > avail)
            return;
        lp->ipver = 4;
        hlen = ihl;
        ipend = l3 + tot;
    } else if (avail >= 40 && ip[0] >> 4 == 6) {
        size_t tot = 40 + (size_t)rd16(ip + 4);
        if (tot > avail) /* payload length past what arrived */
            return;
        lp->ipver = 6;
        ipend = l3 + tot;
        /* the parser's lengths give the extension headers even when there is no transport
         * header it knows; believe them only when they stay inside the datagram */
        hlen = 40;
        if (h.l4 >= 0 && (size_t)h.l4 >= l3 + 40 && (size_t)h.l4 <= ipend)
            hlen = (size_t)h.l4 - l3;
        else if (h.l3len >= h.l4len && h.l3len - h.l4len >= 40 && h.l3len - h.l4len <= tot)
            hlen = h.l3len - h.l4len;
    } else {
        return;
    }
    lp->off[V_IP] = (int32_t)l3;
    lp->l3hlen = (uint32_t)hlen;
    lp->l4proto = h.l4proto;
    if (lp->ipver == 4)
        lp->l4proto = ip[9];

    /* the transport header must lie inside the IP datagram, after the IP header */
    if (h.l4 < 0 || (size_t)h.l4 < l3 + hlen || (size_t)h.l4 > ipend)
        return;
    size_t l4 = (size_t)h.l4, room = ipend - l4;
    const uint8_t *t = p + l4;
    switch (lp->l4proto) {
    case MT_IPPROTO_TCP:
        if (room >= 20 && (size_t)(t[12] >> 4) * 4 >= 20 && (size_t)(t[12] >> 4) * 4 <= room)
            lp->off[V_TCP] = (int32_t)l4;
        break;
    case MT_IPPROTO_UDP:
        if (room >= 8)
            lp->off[V_UDP] = (int32_t)l4;
        break;
    case MT_IPPROTO_ICMP:
        if (room >= 4 && lp->ipver == 4)
            lp->off[V_ICMP] = (int32_t)l4;
        break;
    case MT_IPPROTO_ICMP6:
        if (room >= 4 && lp->ipver == 6)
            lp->off[V_ICMP] = (int32_t)l4;
        break;
    }
}

/* The bytes changed where a header may have moved: the views and the packet's headers are
 * worked out again on the next read. */
static inline void changed(struct lpacket *lp)
{
    lp->parsed = false;
    mt_packet_changed(lp->pkt);
}

static inline void ensure_parsed(struct lpacket *lp)
{
    if (!lp->parsed)
        parse(lp);
}

/* --- checks ------------------------------------------------------------------------------- */

/* The packet at idx, live. Checks the metatable by pointer against upvalue 1 instead of by
 * name through the registry: this runs on every access of every handler call. */
static struct lpacket *check_packet(lua_State *L, int idx)
{
    struct lpacket *lp = lua_touserdata(L, idx);
    if (lp == NULL || !lua_getmetatable(L, idx))
        luaL_typeerror(L, idx, MT_LPACKET_META);
    if (!lua_rawequal(L, -1, lua_upvalueindex(1)))
        luaL_typeerror(L, idx, MT_LPACKET_META);
    lua_pop(L, 1);
    if (lp->pkt == NULL)
        luaL_error(L, EXPIRED_MSG);
    return lp;
}

struct mt_packet *mt__lpacket_arg(lua_State *L, int idx, int meta)
{
    struct lpacket *lp = lua_touserdata(L, idx);
    if (lp == NULL || !lua_getmetatable(L, idx) || !lua_rawequal(L, -1, meta))
        luaL_typeerror(L, idx, MT_LPACKET_META);
    lua_pop(L, 1);
    if (lp->pkt == NULL)
        luaL_error(L, EXPIRED_MSG);
    return lp->pkt;
}

/* The receiver of a metamethod. Lua calls __index, __newindex, __len and __tostring only for
 * objects that have our metatable, and scripts cannot reach the metamethods themselves (the
 * metatable is hidden behind __metatable and there is no debug library), so the type needs
 * no check here: only expiry does. Saves four API calls on every field access. */
static struct lpacket *self_packet(lua_State *L)
{
    struct lpacket *lp = lua_touserdata(L, 1);
    if (lp->pkt == NULL)
        luaL_error(L, EXPIRED_MSG);
    return lp;
}

static struct lview *self_view(lua_State *L)
{
    struct lview *v = lua_touserdata(L, 1);
    if (v->lp->pkt == NULL)
        luaL_error(L, EXPIRED_MSG);
    return v;
}

/* An offset from a script for an n-byte access: anything, negative or huge, is possible. */
static size_t check_off(lua_State *L, int arg, const struct mt_packet *pkt, size_t n)
{
    lua_Integer off = luaL_checkinteger(L, arg);
    if (off < 0 || n > pkt->len || (lua_Unsigned)off > pkt->len - n)
        luaL_argerror(
            L, arg,
            lua_pushfstring(L, "offset %I out of bounds (%d-byte access, packet is %I bytes)", off,
                            (int)n, (lua_Integer)pkt->len));
    return (size_t)off;
}

static uint32_t check_value(lua_State *L, int arg, lua_Integer max)
{
    lua_Integer v = luaL_checkinteger(L, arg);
    if (v < 0 || v > max)
        luaL_argerror(L, arg, lua_pushfstring(L, "value %I out of range 0..%I", v, max));
    return (uint32_t)v;
}

/* --- raw accessors ------------------------------------------------------------------------ */

static int pkt_u8(lua_State *L)
{
    struct mt_packet *pkt = check_packet(L, 1)->pkt;
    lua_pushinteger(L, pkt->data[check_off(L, 2, pkt, 1)]);
    return 1;
}

static int pkt_u16(lua_State *L)
{
    struct mt_packet *pkt = check_packet(L, 1)->pkt;
    lua_pushinteger(L, rd16(pkt->data + check_off(L, 2, pkt, 2)));
    return 1;
}

static int pkt_u32(lua_State *L)
{
    struct mt_packet *pkt = check_packet(L, 1)->pkt;
    lua_pushinteger(L, rd32(pkt->data + check_off(L, 2, pkt, 4)));
    return 1;
}

static int pkt_set_u8(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    size_t off = check_off(L, 2, lp->pkt, 1);
    lp->pkt->data[off] = (uint8_t)check_value(L, 3, 0xff);
    changed(lp);
    return 0;
}

static int pkt_set_u16(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    size_t off = check_off(L, 2, lp->pkt, 2);
    wr16(lp->pkt->data + off, (uint16_t)check_value(L, 3, 0xffff));
    changed(lp);
    return 0;
}

static int pkt_set_u32(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    size_t off = check_off(L, 2, lp->pkt, 4);
    wr32(lp->pkt->data + off, check_value(L, 3, 0xffffffff));
    changed(lp);
    return 0;
}

/* The bytes of an offloaded packet are not a packet anyone else can use yet: the transport
 * checksum holds only the pseudo-header sum. Before a script copies them out (to send or
 * inject later, or to rewrite and write back), the checksum is finished in place, so the copy
 * and the packet agree. A super-packet stays one (its GSO type and size are kept; finishing
 * it into one 64 KiB ordinary packet once made it travel as one that no gateway forwards):
 * the core gives it the partial form back before a device or a segmenter sees it. */
static void finish_checksum(struct mt_packet *pkt)
{
    if (mt_vnet_complete_csum(pkt->data, pkt->len, &pkt->vnet) < 0) {
        /* offsets a script's push/pull left outside the packet: recompute from the headers */
        mt_proto_fix_checksums(pkt->data, pkt->len, pkt->link);
        pkt->vnet.flags &= (uint8_t)~MT_VNET_F_NEEDS_CSUM;
    }
}

static int pkt_bytes(lua_State *L)
{
    struct mt_packet *pkt = check_packet(L, 1)->pkt;
    lua_Integer off = luaL_optinteger(L, 2, 0);
    if (off < 0 || (lua_Unsigned)off > pkt->len)
        luaL_argerror(L, 2,
                      lua_pushfstring(L, "offset %I out of bounds (packet is %I bytes)", off,
                                      (lua_Integer)pkt->len));
    lua_Integer n = luaL_optinteger(L, 3, (lua_Integer)(pkt->len - (size_t)off));
    if (n < 0 || (lua_Unsigned)n > pkt->len - (size_t)off)
        luaL_argerror(L, 3,
                      lua_pushfstring(L, "length %I out of bounds (%I bytes from offset %I)", n,
                                      (lua_Integer)(pkt->len - (size_t)off), off));
    /* Only the transport checksum differs between an offloaded packet and its finished form:
     * finish it (up to 64 KiB summed) only when the copy includes that field. */
    const struct mt_vnet_hdr *v = &pkt->vnet;
    size_t field = (size_t)v->csum_start + v->csum_offset;
    bool covers = (size_t)off < field + 2 && field < (size_t)off + (size_t)n;
    if ((v->flags & MT_VNET_F_NEEDS_CSUM) && covers)
        finish_checksum(pkt);
    lua_pushlstring(L, (const char *)pkt->data + off, (size_t)n);
    return 1;
}

static int pkt_set_bytes(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 3, &n);
    lua_Integer off = luaL_checkinteger(L, 2);
    if (off < 0 || n > lp->pkt->len || (lua_Unsigned)off > lp->pkt->len - n)
        luaL_argerror(L, 2,
                      lua_pushfstring(L,
                                      "offset %I out of bounds (%I bytes do not fit in a %I-byte "
                                      "packet there; use append or resize to grow it)",
                                      off, (lua_Integer)n, (lua_Integer)lp->pkt->len));
    memcpy(lp->pkt->data + off, s, n);
    changed(lp);
    return 0;
}

static int pkt_resize(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    struct mt_packet *pkt = lp->pkt;
    lua_Integer n = luaL_checkinteger(L, 2);
    /* a script may ask for anything: negative, 1e12; only the tailroom is there to grow into */
    size_t room = pkt->len + mt_packet_tailroom(pkt);
    lua_Integer max = (lua_Integer)(room < MT_MAX_PACKET ? room : MT_MAX_PACKET);
    if (n < 0 || n > max || mt_packet_resize(pkt, (size_t)n) < 0)
        luaL_argerror(
            L, 2,
            lua_pushfstring(L, "size %I out of range 0..%I (the room in the buffer)", n, max));
    changed(lp);
    return 0;
}

static int pkt_push(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    if (mt_packet_push(lp->pkt, n) < 0)
        luaL_argerror(L, 2,
                      lua_pushfstring(L,
                                      "%I bytes do not fit in front (headroom %I, packet %I "
                                      "of at most %d bytes)",
                                      (lua_Integer)n, (lua_Integer)mt_packet_headroom(lp->pkt),
                                      (lua_Integer)lp->pkt->len, MT_MAX_PACKET));
    memcpy(lp->pkt->data, s, n);
    changed(lp);
    return 0;
}

static int pkt_pull(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n < 0 || (lua_Unsigned)n > lp->pkt->len || mt_packet_pull(lp->pkt, (size_t)n) < 0)
        luaL_argerror(L, 2,
                      lua_pushfstring(L, "cannot pull %I bytes from a %I-byte packet", n,
                                      (lua_Integer)lp->pkt->len));
    changed(lp);
    return 0;
}

static int pkt_append(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    size_t n, old = lp->pkt->len;
    const char *s = luaL_checklstring(L, 2, &n);
    if (mt_packet_put(lp->pkt, n) < 0)
        luaL_argerror(L, 2,
                      lua_pushfstring(L,
                                      "%I bytes do not fit behind (tailroom %I, packet %I "
                                      "of at most %d bytes)",
                                      (lua_Integer)n, (lua_Integer)mt_packet_tailroom(lp->pkt),
                                      (lua_Integer)lp->pkt->len, MT_MAX_PACKET));
    memcpy(lp->pkt->data + old, s, n);
    changed(lp);
    return 0;
}

/* Offloaded packets keep their partial checksum: after a full recompute, the transport field
 * goes back to the pseudo-header sum the kernel (or the segmenter) expects to complete. */
static void restore_partial(struct lpacket *lp)
{
    struct mt_packet *pkt = lp->pkt;
    if (!(pkt->vnet.flags & MT_VNET_F_NEEDS_CSUM))
        return;
    if (pkt->vnet.gso_type == MT_VNET_GSO_NONE) {
        pkt->vnet.flags &= (uint8_t)~MT_VNET_F_NEEDS_CSUM; /* now it is simply complete */
        return;
    }
    mt_proto_set_partial_csum(pkt->data, pkt->len, pkt->link); /* not a TCP/UDP packet: none */
}

static void push_addr(lua_State *L, int ver, const uint8_t *a);
static bool is_echo(const struct lpacket *lp, const uint8_t *t);

/* pkt:flow() -> proto, src, sport, dst, dport: the 5-tuple in one call instead of six field
 * reads (each a metamethod call, the bulk of a filter's cost). proto is "tcp", "udp", "icmp"
 * (ICMP or ICMPv6; the echo id stands for both ports, 0 for other messages) or the protocol
 * number with ports 0. nil when there is no usable IP header. */
static int pkt_flow(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    ensure_parsed(lp);
    if (lp->off[V_IP] < 0) {
        lua_pushnil(L);
        return 1;
    }
    const uint8_t *p = lp->pkt->data, *ip = p + lp->off[V_IP];
    lua_Integer sport = 0, dport = 0;
    if (lp->off[V_TCP] >= 0 || lp->off[V_UDP] >= 0) {
        bool tcp = lp->off[V_TCP] >= 0;
        const uint8_t *t = p + lp->off[tcp ? V_TCP : V_UDP];
        lua_pushstring(L, tcp ? "tcp" : "udp");
        sport = rd16(t);
        dport = rd16(t + 2);
    } else if (lp->off[V_ICMP] >= 0) {
        const uint8_t *t = p + lp->off[V_ICMP];
        lua_pushliteral(L, "icmp");
        /* parse() guaranteed 4 bytes; the echo id needs 6 */
        if (is_echo(lp, t) && lp->pkt->len - (size_t)lp->off[V_ICMP] >= 8)
            sport = dport = rd16(t + 4);
    } else {
        lua_pushinteger(L, lp->l4proto);
    }
    int v6 = lp->ipver == 6;
    push_addr(L, lp->ipver, v6 ? ip + 8 : ip + 12);
    lua_pushinteger(L, sport);
    push_addr(L, lp->ipver, v6 ? ip + 24 : ip + 16);
    lua_pushinteger(L, dport);
    return 5;
}

static int pkt_checksum(lua_State *L)
{
    struct lpacket *lp = check_packet(L, 1);
    bool ok = mt_proto_fix_checksums(lp->pkt->data, lp->pkt->len, lp->pkt->link) == 0;
    restore_partial(lp);
    lua_pushboolean(L, ok);
    return 1;
}

/* --- packet metamethods ------------------------------------------------------------------- */

/* pkt.l3, pkt.l4, pkt.payload: 0-based offsets of the IP header, the transport header and
 * what follows it (TCP: after its data offset; UDP and ICMP: after 8 bytes), nil when the
 * packet has no such part (as the views: nil for a liar). Names the table does not know
 * come here, off the fast path. Key at 2. */
static int pkt_offset(lua_State *L, struct lpacket *lp)
{
    const char *k = lua_tostring(L, 2);
    ensure_parsed(lp);
    int32_t l4 = lp->off[V_TCP] >= 0   ? lp->off[V_TCP]
                 : lp->off[V_UDP] >= 0 ? lp->off[V_UDP]
                                       : lp->off[V_ICMP];
    int32_t at = -1;
    if (strcmp(k, "l3") == 0) {
        at = lp->off[V_IP];
    } else if (strcmp(k, "l4") == 0) {
        at = l4;
    } else if (strcmp(k, "payload") == 0 && l4 >= 0) {
        const uint8_t *t = lp->pkt->data + l4;
        size_t hl = lp->off[V_TCP] >= 0 ? (size_t)(t[12] >> 4) * 4 : 8;
        /* parse() checked TCP's data offset; an ICMP header may be shorter than 8 bytes */
        if (hl <= lp->pkt->len - (size_t)l4)
            at = l4 + (int32_t)hl;
    }
    if (at < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, at);
    return 1;
}

/* upvalues: 1 the metatable, 2 the name table (methods, and field codes) */
static int pkt_index(lua_State *L)
{
    struct lpacket *lp = self_packet(L); /* Lua calls __index with (pkt, key), no more */
    if (lua_type(L, 2) != LUA_TSTRING) { /* the name table also keeps internal values */
        lua_pushnil(L);
        return 1;
    }
    lua_pushvalue(L, 2); /* the key stays at 2 for pkt_offset */
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNUMBER)
        return lua_isnil(L, -1) ? pkt_offset(L, lp) : 1; /* a method, an offset, or nil */
    int code = (int)lua_tointeger(L, -1);
    switch (code) {
    case P_DIR:
        lua_rawgeti(L, lua_upvalueindex(2), lp->pkt->dir == MT_DIR_INGRESS ? -2 : -1);
        return 1;
    case P_PEER:
        mt__lpeer_push(L, lp->pkt->peer);
        return 1;
    default: {
        if (code < P_ETH || code > P_ICMP)
            return 0;
        enum view k = (enum view)(code - P_ETH);
        ensure_parsed(lp);
        if (lp->off[k] < 0)
            lua_pushnil(L);
        else
            lua_getiuservalue(L, 1, (int)k + 1);
        return 1;
    }
    }
}

static int pkt_newindex(lua_State *L)
{
    self_packet(L);
    return luaL_error(L, "cannot assign pkt.%s: packet fields are read-only",
                      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

static int pkt_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)self_packet(L)->pkt->len);
    return 1;
}

static int pkt_tostring(lua_State *L)
{
    struct mt_packet *pkt = self_packet(L)->pkt;
    char buf[256];
    mt_proto_summary(pkt->data, pkt->len, pkt->link, buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

/* --- header views: reading ---------------------------------------------------------------- */

static void push_mac(lua_State *L, const uint8_t *m)
{
    char s[18];
    snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    lua_pushlstring(L, s, 17);
}

/* IPv4 by hand: glibc's inet_ntop goes through sprintf, a third of a firewall rule's cost. */
static size_t format_ipv4(const uint8_t *a, char *out)
{
    char *o = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *o++ = (char)('0' + v / 100);
        if (v >= 10)
            *o++ = (char)('0' + v / 10 % 10);
        *o++ = (char)('0' + v % 10);
        *o++ = '.';
    }
    return (size_t)(o - out - 1);
}

/* RFC 5952 text of an IPv6 address exactly as glibc's inet_ntop writes it (the longest run of
 * two or more zero groups becomes "::", the first on a tie; IPv4-mapped and -compatible
 * addresses end in dotted quad), without its sprintf per group: addresses are formatted on
 * every read. */
static size_t format_ipv6(const uint8_t *a, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned g[8];
    int best = -1, bestlen = 1, run = -1;
    for (int i = 0; i < 8; i++) {
        g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        if (g[i] == 0) {
            if (run < 0)
                run = i;
            if (i - run + 1 > bestlen) {
                best = run;
                bestlen = i - run + 1;
            }
        } else {
            run = -1;
        }
    }
    char *o = out;
    if (best == 0 && (bestlen == 6 || (bestlen == 5 && g[5] == 0xffff))) {
        memcpy(o, bestlen == 6 ? "::" : "::ffff:", bestlen == 6 ? 2 : 7);
        o += bestlen == 6 ? 2 : 7;
        return (size_t)(o - out) + format_ipv4(a + 12, o);
    }
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            *o++ = ':';
            if (i == 0)
                *o++ = ':';
            i += bestlen - 1;
            continue;
        }
        bool lead = true;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned d = (g[i] >> shift) & 0xF;
            if (d == 0 && lead && shift > 0)
                continue;
            lead = false;
            *o++ = hex[d];
        }
        if (i < 7)
            *o++ = ':';
    }
    return (size_t)(o - out);
}

static void push_addr(lua_State *L, int ver, const uint8_t *a)
{
    char s[INET6_ADDRSTRLEN];
    lua_pushlstring(L, s, ver == 6 ? format_ipv6(a, s) : format_ipv4(a, s));
}

static bool is_echo(const struct lpacket *lp, const uint8_t *t)
{
    return lp->ipver == 4 ? (t[0] == 8 || t[0] == 0) : (t[0] == 128 || t[0] == 129);
}

/* Where each field of each header lives and how it is read and written: one row per header
 * layout (IPv4 and IPv6 are two layouts of the ip view), one column per field name. An
 * integer field is `width` bytes at `off`, shifted and masked (a part of a byte or word),
 * times `scale` plus `add`; what is written is the masked value, put back in its place. */
enum vhow {
    H_NONE = 0, /* the view has no such field */
    H_INT,
    H_MAC,
    H_ADDR,    /* the layout's address: 4 or 16 bytes */
    H_IPVER,   /* ip.version */
    H_L3HLEN,  /* ip.hlen: the IP header with IPv6 extension headers */
    H_L4PROTO, /* IPv6's proto: the final one, after extension headers */
    H_OFF,     /* where the header starts */
};
#define VF_W       1 /* writable */
#define VF_ECHO    2 /* only ICMP echo request/reply messages have it */
#define VF_RESHAPE 4 /* writing it changes what the rest of the packet is */

struct vdesc {
    uint8_t how, off, width, shift, scale, add, flags;
    uint32_t mask;
};
#define BITS(o, w, sh, m, fl)                                                                      \
    {                                                                                              \
        H_INT, o, w, sh, 1, 0, fl, m                                                               \
    }
#define U8(o, fl)  BITS(o, 1, 0, 0xffu, fl)
#define U16(o, fl) BITS(o, 2, 0, 0xffffu, fl)
#define U32(o, fl) BITS(o, 4, 0, 0xffffffffu, fl)
#define SPECIAL(h, o, fl)                                                                          \
    {                                                                                              \
        h, o, 0, 0, 1, 0, fl, 0                                                                    \
    }

enum layout { L_ETH, L_IP4, L_IP6, L_TCP, L_UDP, L_ICMP, L_COUNT };

static const struct vdesc vdescs[L_COUNT][F_COUNT] =
    {
        [L_ETH] =
            {
                [F_DST] = SPECIAL(H_MAC, 0, VF_W),
                [F_SRC] = SPECIAL(H_MAC, 6, VF_W),
                [F_TYPE] = U16(12, VF_W | VF_RESHAPE),
                [F_OFF] = SPECIAL(H_OFF, 0, 0),
            },
        [L_IP4] =
            {
                [F_VERSION] = SPECIAL(H_IPVER, 0, 0),
                [F_HLEN] = SPECIAL(H_L3HLEN, 0, 0),
                [F_TOS] = U8(1, VF_W),
                [F_DSCP] = BITS(1, 1, 2, 63, VF_W),
                [F_ECN] = BITS(1, 1, 0, 3, VF_W),
                [F_LEN] = U16(2, 0),
                [F_ID] = U16(4, VF_W),
                [F_TTL] = U8(8, VF_W),
                [F_PROTO] = U8(9, 0),
                [F_SRC] = SPECIAL(H_ADDR, 12, VF_W),
                [F_DST] = SPECIAL(H_ADDR, 16, VF_W),
                [F_OFF] = SPECIAL(H_OFF, 0, 0),
            },
        [L_IP6] =
            {
                [F_VERSION] = SPECIAL(H_IPVER, 0, 0),
                [F_HLEN] = SPECIAL(H_L3HLEN, 0, 0),
                [F_TOS] = BITS(0, 4, 20, 0xff, VF_W), /* traffic class */
                [F_DSCP] = BITS(0, 4, 22, 63, VF_W),
                [F_ECN] = BITS(0, 4, 20, 3, VF_W),
                [F_LEN] = {H_INT, 4, 2, 0, 1, 40, 0, 0xffff}, /* payload length + the header */
                [F_ID] = BITS(0, 4, 0, 0xfffff, VF_W),        /* flow label */
                [F_TTL] = U8(7, VF_W),                        /* hop limit */
                [F_PROTO] = SPECIAL(H_L4PROTO, 0, 0),
                [F_SRC] = SPECIAL(H_ADDR, 8, VF_W),
                [F_DST] = SPECIAL(H_ADDR, 24, VF_W),
                [F_OFF] = SPECIAL(H_OFF, 0, 0),
            },
        [L_TCP] =
            {
                [F_SPORT] = U16(0, VF_W),
                [F_DPORT] = U16(2, VF_W),
                [F_SEQ] = U32(4, VF_W),
                [F_ACK] = U32(8, VF_W),
                [F_HLEN] = {H_INT, 12, 1, 4, 4, 0, 0, 0xf}, /* data offset, in bytes */
                [F_FLAGS] = U8(13, VF_W),
                [F_WINDOW] = U16(14, VF_W),
                [F_OFF] = SPECIAL(H_OFF, 0, 0),
            },
        [L_UDP] =
            {
                [F_SPORT] = U16(0, VF_W),
                [F_DPORT] = U16(2, VF_W),
                [F_LEN] = U16(4, 0),
                [F_OFF] = SPECIAL(H_OFF, 0, 0),
            },
        [L_ICMP] =
            {
                [F_TYPE] = U8(0, VF_W),
                [F_CODE] = U8(1, VF_W),
                [F_ID] = U16(4, VF_W | VF_ECHO),
                [F_SEQ] = U16(6, VF_W | VF_ECHO),
                [F_OFF] = SPECIAL(H_OFF, 0, 0),
            },
};

static const struct vdesc *vdesc_of(const struct lpacket *lp, enum view k, enum vfield f)
{
    static const enum layout of_view[V_COUNT] = {L_ETH, L_IP4, L_TCP, L_UDP, L_ICMP};
    enum layout l = k == V_IP && lp->ipver == 6 ? L_IP6 : of_view[k];
    return &vdescs[l][f];
}

/* A field that is there in every packet of its view: ICMP's id and seq are only in echo
 * messages (parse() guaranteed 4 bytes of the header, echo needs 8). */
static bool vfield_present(const struct lpacket *lp, enum view k, const struct vdesc *d)
{
    if (!(d->flags & VF_ECHO))
        return true;
    return is_echo(lp, lp->pkt->data + lp->off[k]) && lp->pkt->len - (size_t)lp->off[k] >= 8;
}

static uint32_t read_word(const uint8_t *p, unsigned width)
{
    return width == 1 ? p[0] : width == 2 ? rd16(p) : rd32(p);
}

/* Pushes field d of view k. Every offset read here was checked by parse(): the header's fixed
 * part lies inside the packet. */
/* ip.src and ip.dst, for the ip view at stack index 1: the text of an address is kept in
 * that view's user values, in one of ADDR_SLOTS by a hash of its last bytes, since scripts read
 * the same few addresses over and over and formatting and interning the string cost ~330
 * instructions a read. The strings are the ones push_addr made: the same values. */
static void push_addr_cached(lua_State *L, struct lpacket *lp, const uint8_t *a)
{
    size_t n = lp->ipver == 6 ? 16 : 4;
    unsigned h = (unsigned)(a[n - 1] ^ a[n - 2] * 7u) & (ADDR_SLOTS - 1);
    if (lp->addr_cache[h].ver == lp->ipver && memcmp(lp->addr_cache[h].b, a, n) == 0) {
        lua_getiuservalue(L, 1, 2 + (int)h);
        return;
    }
    push_addr(L, lp->ipver, a);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2 + (int)h); /* preallocated: cannot fail */
    lp->addr_cache[h].ver = lp->ipver;
    memcpy(lp->addr_cache[h].b, a, n);
}

static void view_get(lua_State *L, struct lpacket *lp, enum view k, const struct vdesc *d)
{
    const uint8_t *p = lp->pkt->data + lp->off[k];
    switch (d->how) {
    case H_INT:
        if (!vfield_present(lp, k, d)) {
            lua_pushnil(L);
            return;
        }
        lua_pushinteger(L, (lua_Integer)((read_word(p + d->off, d->width) >> d->shift) & d->mask) *
                                   d->scale +
                               d->add);
        return;
    case H_MAC:
        push_mac(L, p + d->off);
        return;
    case H_ADDR: /* only the ip view has addresses; view_index has it at 1 */
        push_addr_cached(L, lp, p + d->off);
        return;
    case H_IPVER:
        lua_pushinteger(L, lp->ipver);
        return;
    case H_L3HLEN:
        lua_pushinteger(L, lp->l3hlen);
        return;
    case H_L4PROTO:
        lua_pushinteger(L, lp->l4proto);
        return;
    default:
        lua_pushinteger(L, lp->off[k]);
        return;
    }
}

/* upvalues: 1 the view metatable, 2 the field-name table */
static int view_no_field(lua_State *L, enum view k)
{
    return luaL_error(L, "pkt.%s has no field '%s' (its fields: %s)", view_names[k],
                      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : luaL_typename(L, 2),
                      view_field_list[k]);
}

static int view_index(lua_State *L)
{
    struct lview *v = self_view(L); /* called with (view, key), no more: no settop */
    lua_pushvalue(L, 2);            /* the key stays at 2 for the error */
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNUMBER)
        return view_no_field(L, v->kind);
    enum vfield f = (enum vfield)lua_tointeger(L, -1);
    ensure_parsed(v->lp);
    const struct vdesc *d = vdesc_of(v->lp, v->kind, f);
    if (d->how == H_NONE)
        return view_no_field(L, v->kind);
    if (v->lp->off[v->kind] < 0) /* a mutation since took the header away */
        lua_pushnil(L);
    else
        view_get(L, v->lp, v->kind, d);
    return 1;
}

/* --- header views: writing ---------------------------------------------------------------- */

enum csum_kind {
    CS_PLAIN,   /* a checksum field: fold the change in */
    CS_UDP,     /* UDP's: 0 means "none" and stays 0; a computed 0 is sent as 0xffff */
    CS_PARTIAL, /* an offloaded (NEEDS_CSUM) field: the pseudo-header sum, not complemented */
};

/* Rewrites n bytes (n even, at an even offset within the checksummed data) at field with nb,
 * folding the change into the checksum at csum (NULL: none covers it). */
static void rewrite(uint8_t *field, const uint8_t *nb, size_t n, uint8_t *csum, enum csum_kind ck)
{
    if (csum != NULL && ck == CS_PARTIAL) {
        wr16(csum, (uint16_t)~mt_csum_update((uint16_t)~rd16(csum), field, nb, n));
    } else if (csum != NULL) {
        uint16_t c = rd16(csum);
        if (!(ck == CS_UDP && c == 0)) {
            c = mt_csum_update(c, field, nb, n);
            if (ck == CS_UDP && c == 0)
                c = 0xffff;
            wr16(csum, c);
        }
    }
    memcpy(field, nb, n);
}

/* Sets the byte at word[hi ? 0 : 1] of a 16-bit word, the unit a checksum sees. */
static void rewrite8(uint8_t *word, bool hi, uint8_t v, uint8_t *csum, enum csum_kind ck)
{
    uint8_t nb[2] = {word[0], word[1]};
    nb[hi ? 0 : 1] = v;
    rewrite(word, nb, 2, csum, ck);
}

/* The transport checksum that covers the IP pseudo-header (addresses), or NULL. */
static uint8_t *pseudo_csum(struct lpacket *lp, enum csum_kind *ck)
{
    uint8_t *p = lp->pkt->data;
    bool partial = lp->pkt->vnet.flags & MT_VNET_F_NEEDS_CSUM;
    *ck = partial ? CS_PARTIAL : CS_PLAIN;
    if (lp->off[V_TCP] >= 0)
        return p + lp->off[V_TCP] + 16;
    if (lp->off[V_UDP] >= 0) {
        *ck = partial ? CS_PARTIAL : CS_UDP;
        return p + lp->off[V_UDP] + 6;
    }
    if (lp->off[V_ICMP] >= 0 && lp->ipver == 6)
        return p + lp->off[V_ICMP] + 2;
    return NULL;
}

/* The transport checksum of view k (TCP, UDP, ICMP or ICMPv6). */
static uint8_t *l4_csum(struct lpacket *lp, enum view k, enum csum_kind *ck)
{
    /* An offloaded checksum covers only the pseudo-header so far: whoever completes it (the
     * kernel, or the segmenter) sums the transport header as it is then. */
    if (lp->pkt->vnet.flags & MT_VNET_F_NEEDS_CSUM && k != V_ICMP) {
        *ck = CS_PLAIN;
        return NULL;
    }
    uint8_t *t = lp->pkt->data + lp->off[k];
    *ck = k == V_UDP ? CS_UDP : CS_PLAIN;
    return t + (k == V_TCP ? 16 : k == V_UDP ? 6 : 2);
}

static int field_error(lua_State *L, enum view k, const char *name, const char *why)
{
    return luaL_error(L, "cannot assign %s.%s: %s", view_names[k], name, why);
}

static uint32_t field_int(lua_State *L, enum view k, const char *name, lua_Integer max)
{
    int isnum;
    lua_Integer v = lua_tointegerx(L, 3, &isnum);
    if (!isnum || v < 0 || v > max) {
        const char *got = isnum ? lua_pushfstring(L, "%I", v) : luaL_typename(L, 3);
        return (uint32_t)luaL_error(L, "cannot assign %s.%s: integer 0..%I expected, got %s",
                                    view_names[k], name, max, got);
    }
    return (uint32_t)v;
}

static void set_addr(lua_State *L, struct lpacket *lp, unsigned off, const char *name)
{
    int ver = lp->ipver;
    size_t alen = ver == 4 ? 4 : 16;
    if (lua_type(L, 3) != LUA_TSTRING)
        field_error(L, V_IP, name,
                    lua_pushfstring(L, "address text expected, got %s", luaL_typename(L, 3)));
    size_t len;
    const char *s = lua_tolstring(L, 3, &len);
    struct mt_addr na;
    if (len != 0 && len == lp->set_len && memcmp(s, lp->set_text, len) == 0) {
        na = lp->set_addr;
    } else {
        if (mt_addr_parse(s, &na) < 0)
            field_error(L, V_IP, name, lua_pushfstring(L, "invalid IPv%d address '%s'", ver, s));
        if (len < sizeof lp->set_text) {
            memcpy(lp->set_text, s, len);
            lp->set_len = (uint8_t)len;
            lp->set_addr = na;
        }
    }
    if (na.kind != ver)
        field_error(
            L, V_IP, name,
            lua_pushfstring(L, "'%s' is an IPv%d address, the packet is IPv%d", s, na.kind, ver));
    const uint8_t *nb = na.b;
    uint8_t *ip = lp->pkt->data + lp->off[V_IP];
    uint8_t *a = ip + off;
    enum csum_kind ck;
    uint8_t *l4 = pseudo_csum(lp, &ck);
    if (l4 != NULL && ck == CS_PARTIAL) {
        wr16(l4, (uint16_t)~mt_csum_update((uint16_t)~rd16(l4), a, nb, alen));
    } else if (l4 != NULL) { /* the address is in the pseudo-header; the IP header keeps it */
        uint16_t c = rd16(l4);
        if (!(ck == CS_UDP && c == 0)) {
            c = mt_csum_update(c, a, nb, alen);
            wr16(l4, ck == CS_UDP && c == 0 ? 0xffff : c);
        }
    }
    rewrite(a, nb, alen, ver == 4 ? ip + 10 : NULL, CS_PLAIN);
}

static uint8_t parse_hex(char c)
{
    if (c >= '0' && c <= '9')
        return (uint8_t)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (uint8_t)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F')
        return (uint8_t)(c - 'A' + 10);
    return 0xff;
}

static void set_mac(lua_State *L, uint8_t *m, const char *name)
{
    size_t n;
    const char *s = lua_type(L, 3) == LUA_TSTRING ? lua_tolstring(L, 3, &n) : NULL;
    uint8_t nb[6];
    /* "aa:bb:cc:dd:ee:ff" (or with '-'): exactly 17 characters */
    bool ok = s != NULL && n == 17;
    for (int i = 0; ok && i < 6; i++) {
        uint8_t hi = parse_hex(s[i * 3]), lo = parse_hex(s[i * 3 + 1]);
        ok = hi != 0xff && lo != 0xff && (i == 5 || s[i * 3 + 2] == ':' || s[i * 3 + 2] == '-');
        nb[i] = (uint8_t)(hi << 4 | lo);
    }
    if (!ok)
        field_error(L, V_ETH, name, "MAC address \"aa:bb:cc:dd:ee:ff\" expected");
    memcpy(m, nb, 6);
}

/* The checksum that covers view k's fixed fields, or NULL (IPv6 and Ethernet have none). */
static uint8_t *header_csum(struct lpacket *lp, enum view k, enum csum_kind *ck)
{
    *ck = CS_PLAIN;
    if (k == V_ETH || (k == V_IP && lp->ipver == 6))
        return NULL;
    if (k == V_IP)
        return lp->pkt->data + lp->off[V_IP] + 10;
    return l4_csum(lp, k, ck);
}

/* Writes the value at stack index 3 into field d of view k, folding the change into the
 * checksum that covers it. */
static void view_set(lua_State *L, struct lpacket *lp, enum view k, const struct vdesc *d,
                     const char *name)
{
    uint8_t *p = lp->pkt->data + lp->off[k];
    if (d->how == H_NONE)
        field_error(L, k, name, "no such field");
    if (!(d->flags & VF_W))
        field_error(L, k, name, "read-only field");
    if (d->how == H_MAC) {
        set_mac(L, p + d->off, name);
        return;
    }
    if (d->how == H_ADDR) {
        set_addr(L, lp, d->off, name);
        return;
    }
    uint32_t v = field_int(L, k, name, d->mask);
    if (!vfield_present(lp, k, d))
        field_error(L, k, name, "only echo request/reply messages have it");
    uint32_t w = read_word(p + d->off, d->width);
    w = (w & ~(d->mask << d->shift)) | v << d->shift;
    enum csum_kind ck;
    uint8_t *csum = header_csum(lp, k, &ck);
    if (d->width == 1) { /* a checksum sees 16-bit words: rewrite the one holding the byte */
        rewrite8(p + (d->off & ~1u), (d->off & 1u) == 0, (uint8_t)w, csum, ck);
    } else {
        uint8_t nb[4];
        if (d->width == 2)
            wr16(nb, (uint16_t)w);
        else
            wr32(nb, w);
        rewrite(p + d->off, nb, d->width, csum, ck);
    }
    if (d->flags & VF_RESHAPE)
        changed(lp); /* what follows is now something else */
}

static int view_newindex(lua_State *L)
{
    struct lview *v = self_view(L);
    const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNUMBER)
        return field_error(L, v->kind, name, "no such field");
    enum vfield f = (enum vfield)lua_tointeger(L, -1);
    lua_pop(L, 1);
    ensure_parsed(v->lp);
    if (v->lp->off[v->kind] < 0)
        return field_error(L, v->kind, name, "the packet no longer has this header");
    view_set(L, v->lp, v->kind, vdesc_of(v->lp, v->kind, f), name);
    return 0;
}

static int view_tostring(lua_State *L)
{
    struct lview *v = self_view(L);
    lua_pushfstring(L, "moontun %s header", view_names[v->kind]);
    return 1;
}

/* --- registration ------------------------------------------------------------------------- */

static const luaL_Reg methods[] = {
    {"u8", pkt_u8},
    {"u16", pkt_u16},
    {"u32", pkt_u32},
    {"set_u8", pkt_set_u8},
    {"set_u16", pkt_set_u16},
    {"set_u32", pkt_set_u32},
    {"bytes", pkt_bytes},
    {"set_bytes", pkt_set_bytes},
    {"resize", pkt_resize},
    {"push", pkt_push},
    {"pull", pkt_pull},
    {"append", pkt_append},
    {"checksum", pkt_checksum},
    {"flow", pkt_flow},
    {NULL, NULL},
};

static const luaL_Reg metamethods[] = {
    {"__index", pkt_index}, {"__newindex", pkt_newindex},
    {"__len", pkt_len},     {"__tostring", pkt_tostring},
    {NULL, NULL},
};

static const luaL_Reg view_metamethods[] = {
    {"__index", view_index},
    {"__newindex", view_newindex},
    {"__tostring", view_tostring},
    {NULL, NULL},
};

/* Makes the metatable `name` with metamethods mm; every metamethod gets two upvalues: the
 * metatable itself (for the pointer check) and a name table holding the methods (each with
 * the metatable as upvalue) and the field codes. Scripts see only `name` from getmetatable. */
static void create_meta(lua_State *L, const char *name, const luaL_Reg *mm, const luaL_Reg *m,
                        const char *const *fields, int nfields)
{
    luaL_newmetatable(L, name);
    lua_createtable(L, 0, nfields + 16);
    if (m != NULL) {
        lua_pushvalue(L, -2);
        luaL_setfuncs(L, m, 1);
    }
    for (int i = 1; i < nfields; i++) {
        lua_pushinteger(L, i);
        lua_setfield(L, -2, fields[i]);
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2); /* mt, mt, names */
    luaL_setfuncs(L, mm, 2);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

void mt__lpacket_open(lua_State *L)
{
    create_meta(L, MT_LPACKET_META, metamethods, methods, pfield_names,
                (int)(sizeof pfield_names / sizeof pfield_names[0]));
    /* pkt.dir hands out these two strings, kept alive here so a read never makes one */
    luaL_getmetatable(L, MT_LPACKET_META);
    lua_getfield(L, -1, "__index");
    lua_getupvalue(L, -1, 2);
    lua_pushliteral(L, "egress");
    lua_rawseti(L, -2, -1);
    lua_pushliteral(L, "ingress");
    lua_rawseti(L, -2, -2);
    lua_pop(L, 3);
    create_meta(L, MT_LVIEW_META, view_metamethods, NULL, vfield_names, F_COUNT);
}

void mt__lpacket_new(lua_State *L)
{
    struct lpacket *lp = lua_newuserdatauv(L, sizeof *lp, V_COUNT);
    memset(lp, 0, sizeof *lp);
    luaL_setmetatable(L, MT_LPACKET_META);
    for (int k = 0; k < V_COUNT; k++) {
        struct lview *v = lua_newuserdatauv(L, sizeof *v, k == V_IP ? 1 + ADDR_SLOTS : 1);
        v->lp = lp;
        v->kind = (enum view)k;
        luaL_setmetatable(L, MT_LVIEW_META);
        lua_pushvalue(L, -2); /* a view stored by a script keeps its packet's memory alive */
        lua_setiuservalue(L, -2, 1);
        lua_setiuservalue(L, -2, k + 1);
    }
}

/* The chain owns these userdata and calls this per packet: no metatable check on this path. */
void mt__lpacket_bind(void *ud, struct mt_packet *pkt)
{
    struct lpacket *lp = ud;
    lp->pkt = pkt;
    lp->parsed = false;
}

void mt__lpacket_expire(void *ud)
{
    struct lpacket *lp = ud;
    lp->pkt = NULL;
    lp->parsed = false;
}
