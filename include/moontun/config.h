/* The command line: every option, parsed and validated before anything
 * is created, so a wrong flag costs one clear line and no leftover device. */
#ifndef MOONTUN_CONFIG_H
#define MOONTUN_CONFIG_H

#include <net/if.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moontun/addr.h"

#define MT_MAX_SCRIPTS 16
#define MT_MAX_ADDRS   8
#define MT_MAX_ALLOW   16
#define MT_MAX_ARGS    32

/* Defaults that more than the option parser needs (the script chain falls back on them for a
 * config filled in by hand, as moontun test and replay do). */
/* No instruction budget by default: the wall-clock bound (--lua-time) stops a runaway call, and
 * a count hook would make Lua trace every instruction (a third of a firewall rule's cost). */
#define MT_DEFAULT_LUA_BUDGET 0
#define MT_DEFAULT_LUA_MEM    64 /* MB */
#define MT_DEFAULT_LUA_TIME   50 /* ms */
#define MT_DEFAULT_MAX_PEERS  256

enum mt_role { MT_ROLE_SERVER = 0, MT_ROLE_CLIENT = 1 };
enum mt_transport { MT_TRANSPORT_TCP = 0, MT_TRANSPORT_UDP = 1, MT_TRANSPORT_WG = 2 };
enum mt_on_error { MT_ON_ERROR_DROP = 0, MT_ON_ERROR_PASS = 1 };

struct mt_wg_config; /* core/wg/config.h */

/* One -S argument: a script path and its key=value settings. Strings point into text. */
struct mt_script_spec {
    char *text; /* owned copy of the argument, split in place */
    const char *path;
    const char *keys[MT_MAX_ARGS];
    const char *values[MT_MAX_ARGS];
    int nargs;
};

struct mt_config {
    char ifname[IFNAMSIZ]; /* empty: the kernel picks */
    bool tap;
    enum mt_role role;
    char host[256]; /* client: the server to connect to */
    uint16_t port;
    char listen[256]; /* bind address; empty: any (IPv6 dual-stack, else IPv4) */
    enum mt_transport transport;
    struct mt_script_spec scripts[MT_MAX_SCRIPTS];
    int nscripts;
    struct mt_prefix addrs[MT_MAX_ADDRS]; /* --addr: assigned to the device */
    int naddrs;
    int mtu;
    enum mt_on_error on_error;
    long lua_budget; /* instructions per handler call */
    long lua_mem_mb;
    long lua_time_ms; /* wall-clock bound per handler call, timer run or hook */
    char user[64];
    struct mt_prefix allow[MT_MAX_ALLOW];
    int nallow;
    int max_peers;
    int log_level;       /* enum mt_log_level */
    double keepalive;    /* UDP: send a keepalive after this long without sending */
    double idle_timeout; /* UDP: forget a peer heard nothing from for this long */
    bool no_offload;     /* never use IFF_VNET_HDR/TSO (see vnet.h) */
    bool outer_df;       /* UDP over IPv4: outer datagrams carry DF (--outer-df on) */
    bool no_udp_offload; /* UDP: no kernel GSO/GRO on the socket (--udp-offload off) */
    /* --wg FILE: the wg(8) file, parsed once here (keys, peers, AllowedIPs); freed (and its
     * keys wiped) by mt_config_free. NULL without --wg. */
    struct mt_wg_config *wg;

    /* The control plane (core/control.c). */
    char control[108];       /* --control: the socket (empty: /run/moontun/IFNAME.sock) */
    char metrics_listen[64]; /* --metrics-listen ADDR:PORT (empty: off) */
};

/* Outcome of parsing besides an error: run, or the request (--help/--version) was served. */
#define MT_CONFIG_RUN  0
#define MT_CONFIG_EXIT 1

/* Fills cfg from argv. Returns MT_CONFIG_RUN, MT_CONFIG_EXIT after printing help or version to
 * stdout, or a negative errno with one line in err naming the problem. */
int mt_config_parse(struct mt_config *cfg, int argc, char **argv, char *err, size_t errsz);
void mt_config_free(struct mt_config *cfg);
void mt_config_usage(FILE *out);

#endif
