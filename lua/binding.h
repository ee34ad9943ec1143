/* Private interface between the pieces of the Lua binding: the packet userdata (lpacket.c),
 * the peer userdata and the moontun module (lmoontun.c), and the chain (script.c). */
#ifndef MOONTUN_LUA_BINDING_H
#define MOONTUN_LUA_BINDING_H

#include <lua.h>

#include "moontun/packet.h"
#include "moontun/peer.h"

/* --- lpacket.c: the packet view ---------------------------------------------------------- */

#define MT_LPACKET_META "moontun.packet"

/* Registers the packet metatable and the header-view metatables in L. */
void mt__lpacket_open(lua_State *L);
/* Pushes a new, expired packet userdata. The chain makes a few at load time and reuses them
 * for every call (no allocation per packet). */
void mt__lpacket_new(lua_State *L);
/* Points the packet userdata at idx to pkt, making it valid until mt__lpacket_expire. */
void mt__lpacket_bind(lua_State *L, int idx, struct mt_packet *pkt);
/* Makes the userdata at idx raise an "expired" error on any further use. */
void mt__lpacket_expire(lua_State *L, int idx);
/* The live packet of the packet userdata at idx (its metatable compared with the one at meta,
 * an upvalue of the caller: no registry lookup); raises for anything else or an expired one. */
struct mt_packet *mt__lpacket_arg(lua_State *L, int idx, int meta);

/* --- lflows.c: mt.flows ------------------------------------------------------------------- */

/* Registers the flow table's metatables and sets module.flows (module at idx, with every). */
void mt__lflows_open(lua_State *L, int module);

/* --- lmoontun.c: peers and the module ----------------------------------------------------- */

#define MT_LPEER_META "moontun.peer"

/* Pushes the one Lua object for peer (made on first use, cached per state), or nil. */
void mt__lpeer_push(lua_State *L, struct mt_peer *peer);

#endif
