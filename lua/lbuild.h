/* The packet builder mt.packet{...}: a packet's bytes from named fields (lbuild.c). Part of
 * the moontun module; moontun test uses the same function for its input packets. */
#ifndef MOONTUN_LUA_LBUILD_H
#define MOONTUN_LUA_LBUILD_H

#include <lua.h>

/* mt.packet(spec) -> string: Ethernet (optional), IPv4 or IPv6, TCP/UDP/ICMP/ICMPv6 or raw,
 * with every length and checksum right unless the spec asks for a lie. */
int mt__lbuild_packet(lua_State *L);

#endif
