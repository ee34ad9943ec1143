/* The script chain: the Lua scripts given with -S, loaded into one Lua state, and the calls
 * the core makes into them for every packet. The core knows nothing about Lua beyond this. */
#ifndef MOONTUN_SCRIPT_H
#define MOONTUN_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moontun/config.h"
#include "moontun/packet.h"
#include "moontun/peer.h"
#include "moontun/stats.h"

struct ev_loop;
struct ev_timer;

/* The exit status when the watchdog ends the process: a call into the scripts ran more than
 * 5 s past its time bound, stuck where no limit reaches. A supervisor should restart. */
#define MT_EXIT_STALL 70

enum mt_verdict {
    MT_VERDICT_PASS = 0,  /* continue; after the chain, the default action */
    MT_VERDICT_DROP = 1,  /* drop and count */
    MT_VERDICT_REPLY = 2, /* send back the way it came */
    MT_VERDICT_ROUTE = 3, /* send to the peer in *route */
};

/* What scripts may ask the tunnel to do. The core fills one in; unit tests fill in fakes. */
struct mt_host {
    void *ctx;
    struct ev_loop *loop; /* timers (mt.every/mt.after) run on it */
    const struct mt_config *cfg;
    struct mt_stats *stats; /* the process counters; the chain adds its own to them */
    /* Writes bytes to the device as if they had arrived from the tunnel (no hooks run). */
    int (*inject)(void *ctx, const uint8_t *data, size_t len);
    /* Sends already-encoded bytes to a peer (the chain ran encode before calling this). */
    int (*send)(void *ctx, struct mt_peer *peer, const uint8_t *data, size_t len);
    /* Fills out[] with up to max live peers, returns how many. */
    size_t (*peers)(void *ctx, struct mt_peer **out, size_t max);
    /* Optional virtual clock (moontun replay and test; NULL in the tunnel): mt.now() reads
     * now, and timers are armed and stopped through timer_start/timer_stop instead of on loop,
     * so they fire in that clock's time. */
    double (*now)(void *ctx);
    /* mt.route: sends prefix p to peer (by id) or to the peer named name; both NULL removes
     * the route. Returns 0, -ENOENT (nothing to remove), -ENOSPC or -EINVAL. Optional: NULL
     * where there is no routing (moontun replay and test). */
    int (*route)(void *ctx, const struct mt_prefix *p, const struct mt_peer *peer,
                 const char *name);
    void (*timer_start)(void *ctx, struct ev_timer *w);
    void (*timer_stop)(void *ctx, struct ev_timer *w);
};

struct mt_scripts;

/* Loads every -S script of cfg into a new Lua state and runs their start handlers.
 * Returns 0, or a negative errno with one line in err naming the file and line. With no
 * scripts configured it succeeds and *out is NULL (the core then never calls in). */
int mt_scripts_load(struct mt_scripts **out, const struct mt_config *cfg,
                    const struct mt_host *host, char *err, size_t errsz);
/* Only compiles every -S script (runs nothing): for a start-up that must report syntax errors
 * before the device exists but run the scripts later, after dropping root (--user). */
int mt_scripts_check(const struct mt_config *cfg, char *err, size_t errsz);
/* Like mt_scripts_load, but builds the sandboxed state even when cfg has no scripts: moontun
 * test runs its test files in it. */
int mt_scripts_sandbox(struct mt_scripts **out, const struct mt_config *cfg,
                       const struct mt_host *host, char *err, size_t errsz);
/* Runs the stop handlers and frees the state. NULL is fine. */
void mt_scripts_free(struct mt_scripts *s);

/* Builds a new state from the same -S arguments and swaps it in; mt.state carries over.
 * On any failure the old chain stays in force and err says why. Call between packets. */
int mt_scripts_reload(struct mt_scripts **s, char *err, size_t errsz);

/* Per-packet calls. pkt->dir and pkt->peer are set by the caller (for ingress, the peer it
 * came from). egress/ingress return PASS, DROP, REPLY or ROUTE (then *route is the peer);
 * encode/decode return PASS or DROP. A failing handler yields the --on-error verdict. */
enum mt_verdict mt_scripts_egress(struct mt_scripts *s, struct mt_packet *pkt,
                                  struct mt_peer **route);
enum mt_verdict mt_scripts_ingress(struct mt_scripts *s, struct mt_packet *pkt,
                                   struct mt_peer **route);
enum mt_verdict mt_scripts_encode(struct mt_scripts *s, struct mt_packet *pkt,
                                  struct mt_peer *peer);
enum mt_verdict mt_scripts_decode(struct mt_scripts *s, struct mt_packet *pkt,
                                  struct mt_peer *peer);

/* Which hooks any script in the chain defines, so the core can skip the rest. */
#define MT_HOOK_EGRESS  0x1
#define MT_HOOK_INGRESS 0x2
#define MT_HOOK_ENCODE  0x4
#define MT_HOOK_DECODE  0x8
unsigned mt_scripts_hooks(const struct mt_scripts *s);

/* The script whose handler ended the last chain (a verdict other than PASS, or a failure
 * under --on-error drop) and that hook's name in *hook; NULL when every handler passed. */
const char *mt_scripts_decider(const struct mt_scripts *s, const char **hook);
/* True when the last chain dropped its packet because a script failed (its on_error= or
 * --on-error drop): the core counts that drop as the script error it is, not as a drop. */
bool mt_scripts_failed(const struct mt_scripts *s);
/* The line where the deciding handler is defined (for the -d trace), 0 when none decided. */
int mt_scripts_decider_line(const struct mt_scripts *s);
/* The last failure's message, condensed to one line ("" when none): with mt_scripts_failed,
 * why the last chain dropped its packet (moontun capture names it). */
const char *mt_scripts_error(const struct mt_scripts *s);

/* What one script of the chain did, for moontun show and metrics (lua/scriptstats.c). */
struct mt_script_info {
    const char *name; /* basename */
    uint64_t calls;   /* packet handler calls */
    uint64_t errors;  /* failed calls of any kind, budget and memory aborts included */
    uint64_t budget_aborts, memory_aborts;
    uint64_t verdicts[4]; /* by enum mt_verdict, of packet handler calls that returned one */
    unsigned samples;     /* timed calls behind p50/p99 (one in 16, the last 256; 0: none) */
    double p50, p99;      /* seconds per packet handler call */
};
/* How many scripts the chain holds (0 for NULL). */
int mt_scripts_count(const struct mt_scripts *s);
/* Fills *out for script i (0-based, chain order). Returns 0 or -ENOENT. */
int mt_scripts_info(const struct mt_scripts *s, int i, struct mt_script_info *out);

/* --- what scripts add to the control plane (lua/lcontrol.c) ------------------------------- */

/* Runs the command name that a script registered with mt.command, with its words as string
 * arguments, under the handlers' bounds. Returns 0 with *reply (malloc'd, *len bytes, the
 * caller frees; NULL when the command returned nothing); -ENOENT when no script registers
 * name (err lists those that are); -EINVAL when it failed (err: one line; the failure is
 * logged and counted as the script's error). */
int mt_scripts_command(struct mt_scripts *s, const char *name, int argc, char **argv, char **reply,
                       size_t *len, char *err, size_t errsz);
/* The k-th registered command (0-based), and in *script whose it is; NULL past the last. */
const char *mt_scripts_command_name(const struct mt_scripts *s, int k, int *script);

#define MT_METRIC_LABELS 8 /* labels of one series, besides script and index */
/* A metric a script declared with mt.counter or mt.gauge, and its series (label sets). */
struct mt_script_metric {
    const char *name, *help; /* exposed as moontun_script_<name> */
    bool gauge;
    int script;
    int nseries;
};
struct mt_script_series {
    int nlabels;
    const char *keys[MT_METRIC_LABELS], *values[MT_METRIC_LABELS];
    double value;
};
/* Fills metric k (declaration order) or series j of metric k. 0, or -ENOENT past the last. */
int mt_scripts_metric(const struct mt_scripts *s, int k, struct mt_script_metric *out);
int mt_scripts_series(const struct mt_scripts *s, int k, int j, struct mt_script_series *out);

/* The core tells the chain a peer is gone, so Lua objects for it stop routing to it. */
void mt_scripts_peer_gone(struct mt_scripts *s, struct mt_peer *peer);

#endif
