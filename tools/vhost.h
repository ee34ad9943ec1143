/* The host that moontun replay and moontun test give the script chain instead of a tunnel: a
 * virtual clock with its own timer heap (mt.now, mt.every and mt.after run in capture or test
 * time), a fixed set of fake peers, and the -S parsing of the real command line. */
#ifndef MOONTUN_TOOLS_VHOST_H
#define MOONTUN_TOOLS_VHOST_H

#include <stddef.h>
#include <stdint.h>

#include "moontun/config.h"
#include "moontun/peer.h"
#include "moontun/script.h"

#define MT_VHOST_MAX_PEERS 64
#define MT_VHOST_MAX_FIRES 1000000 /* timer calls per advance: a 1 ns mt.every cannot hang us */

struct ev_timer;

struct mt_vtimer {
    struct ev_timer *w;
    double at;
    uint64_t seq; /* equal deadlines fire in the order they were armed */
};

struct mt_vhost {
    double now;
    struct mt_vtimer *heap; /* min-heap on (at, seq); w->active is the index + 1 */
    size_t ntimers, cap;
    uint64_t seq;
    struct mt_peer peers[MT_VHOST_MAX_PEERS]; /* stable addresses: chains keep pointers */
    size_t npeers;
};

void mt_vhost_init(struct mt_vhost *vh, double now);
void mt_vhost_free(struct mt_vhost *vh);
/* Fires, in deadline order, every timer due at or before t (the clock reads each one's
 * deadline while it runs), then sets the clock to t. Returns how many fired. */
size_t mt_vhost_advance(struct mt_vhost *vh, double t);
/* Adds a peer ("host:port", name defaults to it); NULL when the table is full. */
struct mt_peer *mt_vhost_peer(struct mt_vhost *vh, const char *addr, const char *name);

/* The mt_host callbacks for a host whose ctx is the vhost itself. */
double mt_vhost_now_cb(void *ctx);
void mt_vhost_start_cb(void *ctx, struct ev_timer *w);
void mt_vhost_stop_cb(void *ctx, struct ev_timer *w);
size_t mt_vhost_peers_cb(void *ctx, struct mt_peer **out, size_t max);
/* The same for any ctx. */
void mt_vhost_timer_start(struct mt_vhost *vh, struct ev_timer *w);
void mt_vhost_timer_stop(struct mt_vhost *vh, struct ev_timer *w);
size_t mt_vhost_live_peers(struct mt_vhost *vh, struct mt_peer **out, size_t max);

/* Parses -S specs and options exactly as the tunnel's command line does (a server, so the
 * role needs no host), into cfg. extra is more argv words ("--on-error", "pass", "-a", ...).
 * Returns 0 or a negative errno with err filled. Free with mt_config_free. */
int mt_vhost_config(struct mt_config *cfg, const char *const *specs, int nspecs,
                    const char *const *extra, int nextra, char *err, size_t errsz);

#endif
