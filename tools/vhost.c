/* The virtual host of moontun replay and test: a clock that only moves when told, a timer heap
 * that runs lmoontun's timer callbacks at their deadlines on that clock (as libev would on
 * the real one), fake peers, and -S parsing shared with the tunnel's command line. */
#include "vhost.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "moontun/log.h"

void mt_vhost_init(struct mt_vhost *vh, double now)
{
    memset(vh, 0, sizeof *vh);
    vh->now = now;
}

void mt_vhost_free(struct mt_vhost *vh)
{
    /* Timers still here belong to Lua states already closed: forget them, touch nothing. */
    free(vh->heap);
    vh->heap = NULL;
    vh->ntimers = vh->cap = 0;
}

static bool before(const struct mt_vtimer *a, const struct mt_vtimer *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void place(struct mt_vhost *vh, size_t i, struct mt_vtimer t)
{
    vh->heap[i] = t;
    t.w->active = (int)i + 1;
}

static void sift_up(struct mt_vhost *vh, size_t i)
{
    struct mt_vtimer t = vh->heap[i];
    while (i > 0 && before(&t, &vh->heap[(i - 1) / 2])) {
        place(vh, i, vh->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(vh, i, t);
}

static void sift_down(struct mt_vhost *vh, size_t i)
{
    struct mt_vtimer t = vh->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= vh->ntimers)
            break;
        if (c + 1 < vh->ntimers && before(&vh->heap[c + 1], &vh->heap[c]))
            c++;
        if (!before(&vh->heap[c], &t))
            break;
        place(vh, i, vh->heap[c]);
        i = c;
    }
    place(vh, i, t);
}

static void heap_remove(struct mt_vhost *vh, size_t i)
{
    vh->heap[i].w->active = 0;
    vh->ntimers--;
    if (i == vh->ntimers)
        return;
    place(vh, i, vh->heap[vh->ntimers]);
    sift_down(vh, i);
    sift_up(vh, i);
}

static void heap_insert(struct mt_vhost *vh, ev_timer *w, double at)
{
    if (vh->ntimers == vh->cap) {
        size_t cap = vh->cap ? vh->cap * 2 : 64;
        struct mt_vtimer *h = realloc(vh->heap, cap * sizeof *h);
        if (h == NULL) {
            /* Out of memory: the timer never fires, which the script will notice as it
             * would a lost event; replay and test are not worth aborting for it. */
            mt_error("virtual clock: out of memory, a timer is lost");
            return;
        }
        vh->heap = h;
        vh->cap = cap;
    }
    struct mt_vtimer t = {w, at, vh->seq++};
    vh->heap[vh->ntimers++] = t;
    sift_up(vh, vh->ntimers - 1);
}

void mt_vhost_timer_start(struct mt_vhost *vh, struct ev_timer *w)
{
    if (w->active) /* ev_timer_start of an active timer does nothing either */
        return;
    heap_insert(vh, w, vh->now + w->at); /* ev_timer_init left the delay in at */
}

void mt_vhost_timer_stop(struct mt_vhost *vh, struct ev_timer *w)
{
    if (w->active > 0 && (size_t)w->active <= vh->ntimers && vh->heap[w->active - 1].w == w)
        heap_remove(vh, (size_t)w->active - 1);
}

size_t mt_vhost_advance(struct mt_vhost *vh, double t)
{
    size_t fired = 0;
    while (vh->ntimers > 0 && vh->heap[0].at <= t) {
        if (fired == MT_VHOST_MAX_FIRES) {
            mt_warn("virtual clock: %d timer calls in one step, the rest skipped",
                    MT_VHOST_MAX_FIRES);
            break;
        }
        struct mt_vtimer top = vh->heap[0];
        if (top.at > vh->now)
            vh->now = top.at;
        /* As libev: a repeating timer is re-armed before its callback, a one-shot stopped. */
        if (top.w->repeat > 0.) {
            vh->heap[0].at = top.at + top.w->repeat;
            vh->heap[0].seq = vh->seq++;
            sift_down(vh, 0);
        } else {
            heap_remove(vh, 0);
        }
        fired++;
        top.w->cb(NULL, top.w, EV_TIMER);
    }
    if (t > vh->now)
        vh->now = t;
    return fired;
}

struct mt_peer *mt_vhost_peer(struct mt_vhost *vh, const char *addr, const char *name)
{
    if (vh->npeers == MT_VHOST_MAX_PEERS)
        return NULL;
    struct mt_peer *p = &vh->peers[vh->npeers];
    memset(p, 0, sizeof *p);
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    snprintf(p->name, sizeof p->name, "%s", name != NULL && *name ? name : addr);
    p->id = (uint32_t)++vh->npeers;
    p->up = true;
    return p;
}

size_t mt_vhost_live_peers(struct mt_vhost *vh, struct mt_peer **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < vh->npeers && n < max; i++)
        if (vh->peers[i].up)
            out[n++] = &vh->peers[i];
    return n;
}

double mt_vhost_now_cb(void *ctx)
{
    return ((struct mt_vhost *)ctx)->now;
}

void mt_vhost_start_cb(void *ctx, struct ev_timer *w)
{
    mt_vhost_timer_start(ctx, w);
}

void mt_vhost_stop_cb(void *ctx, struct ev_timer *w)
{
    mt_vhost_timer_stop(ctx, w);
}

size_t mt_vhost_peers_cb(void *ctx, struct mt_peer **out, size_t max)
{
    return mt_vhost_live_peers(ctx, out, max);
}

int mt_vhost_config(struct mt_config *cfg, const char *const *specs, int nspecs,
                    const char *const *extra, int nextra, char *err, size_t errsz)
{
    /* The tunnel's own parser, so settings, limits and errors are exactly those of -S. */
    char *argv[2 + 2 * MT_MAX_SCRIPTS + 32];
    int argc = 0;
    if (nspecs > MT_MAX_SCRIPTS || nextra > 30) {
        snprintf(err, errsz, "at most %d scripts", MT_MAX_SCRIPTS);
        memset(cfg, 0, sizeof *cfg);
        return -EINVAL;
    }
    argv[argc++] = (char *)"moontun";
    argv[argc++] = (char *)"-s";
    for (int i = 0; i < nspecs; i++) {
        argv[argc++] = (char *)"-S";
        argv[argc++] = (char *)specs[i];
    }
    for (int i = 0; i < nextra; i++)
        argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;
    int rc = mt_config_parse(cfg, argc, argv, err, errsz);
    if (rc == MT_CONFIG_EXIT) { /* only -h/-V do that, and we never pass them */
        snprintf(err, errsz, "unexpected option");
        return -EINVAL;
    }
    return rc < 0 ? rc : 0;
}
