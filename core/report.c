/* moontun show (text, JSON) and metrics (Prometheus text format 0.0.4), written from the
 * tunnel's counters into a reply buffer. Never on the packet path: one walk per question. */
#include "report.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "moontun/addr.h"
#include "moontun/log.h"

/* The process counters, in the exit summary's order: name, what it counts, and whether it is
 * a gauge-like number rather than a counter. */
static const struct {
    const char *name;
    size_t off;
    const char *help;
} counters[] = {
#define C(f, h)                                                                                    \
    {                                                                                              \
#f, offsetof(struct mt_stats, f), h                                                        \
    }
    C(dev_rx_packets, "packets read from the device"),
    C(dev_rx_bytes, "bytes read from the device"),
    C(dev_tx_packets, "packets written to the device"),
    C(dev_tx_bytes, "bytes written to the device"),
    C(dev_tx_errors, "device writes that failed"),
    C(net_rx_packets, "packets received from peers"),
    C(net_rx_bytes, "bytes received from peers"),
    C(net_tx_packets, "packets sent to peers"),
    C(net_tx_bytes, "bytes sent to peers"),
    C(no_route, "packets from the device with no peer to go to"),
    C(not_connected, "packets from the device while no peer was up (before the link)"),
    C(script_drops, "DROP verdicts acted on"),
    C(script_replies, "REPLY verdicts acted on"),
    C(queue_drops, "packets dropped because a peer's send queue was full"),
    C(bad_frames, "malformed frames or datagrams from the network"),
    C(too_big, "packets larger than their destination takes"),
    C(bad_offloads, "offload headers from peers that lied about their packet"),
    C(udp_gso_sends, "UDP sends of several datagrams at once (kernel GSO)"),
    C(udp_gro_reads, "UDP reads of several datagrams joined by the kernel (GRO)"),
    C(peers_up, "peers that came up"),
    C(peers_down, "peers that went down"),
    C(peers_refused, "peers refused by --allow or --max-peers"),
    C(script_errors, "script handler failures (budget and memory aborts included)"),
    C(budget_aborts, "script handlers stopped by the instruction budget or time bound"),
    C(memory_aborts, "script handlers stopped by the memory cap"),
    C(reloads, "successful script reloads"),
    C(reload_failures, "failed script reloads"),
#undef C
};
#define NCOUNTERS (sizeof counters / sizeof counters[0])

static const char *const verdict_names[4] = {"pass", "drop", "reply", "route"};
#define MAX_SHOWN_ROUTES 16 /* learned addresses listed per peer; the count says the rest */

static unsigned long long counter(const struct mt_tunnel *t, size_t i)
{
    return (unsigned long long)*(const uint64_t *)((const char *)&t->stats + counters[i].off);
}

static const char *role_name(const struct mt_tunnel *t)
{
    return t->cfg->role == MT_ROLE_SERVER ? "server" : "client";
}

static void wall_time(double when, char *buf, size_t bufsz)
{
    time_t s = (time_t)when;
    struct tm tm;
    if (!localtime_r(&s, &tm) || strftime(buf, bufsz, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, bufsz, "?");
}

/* Calls fn for each learned address of p, at most max; returns how many p owns. A walk of
 * the whole table (8192 slots) per peer: fine for a question, never per packet. */
static size_t peer_routes(const struct mt_tunnel *t, const struct mt_tpeer *p, struct mt_buf *b,
                          size_t max, const char *sep, bool json)
{
    size_t n = 0;
    for (size_t i = 0; i < t->routes.nslots; i++) {
        const struct mt_route_entry *e = &t->routes.slots[i];
        if (e->owner != p)
            continue;
        if (n < max) {
            char a[MT_ADDR_STRLEN];
            mt_addr_str(&e->addr, a, sizeof a);
            mt_buf_printf(b, json ? "%s\"%s\"" : "%s%s", n ? sep : "", a);
        }
        n++;
    }
    return n;
}

/* A script metric's series labels: `k="v",k2="v2"` (Prometheus escaping), or in JSON. */
static void series_labels(struct mt_buf *b, const struct mt_script_series *se, bool json)
{
    for (int l = 0; l < se->nlabels; l++) {
        mt_buf_printf(b, "%s%s%s%s", l ? (json ? ", " : ",") : "", json ? "\"" : "", se->keys[l],
                      json ? "\": \"" : "=\"");
        if (json)
            mt_buf_json(b, se->values[l]);
        else
            mt_buf_label(b, se->values[l]);
        mt_buf_printf(b, "\"");
    }
}

/* What script i added to the control plane (mt.command, mt.counter, mt.gauge), for show. */
static void show_script_extras(struct mt_buf *b, const struct mt_scripts *sc, int i)
{
    int owner, n = 0;
    const char *name;
    for (int k = 0; (name = mt_scripts_command_name(sc, k, &owner)) != NULL; k++)
        if (owner == i)
            mt_buf_printf(b, "%s%s", n++ ? ", " : "  commands: ", name);
    if (n)
        mt_buf_printf(b, "\n");
    struct mt_script_metric m;
    for (int k = 0; mt_scripts_metric(sc, k, &m) == 0; k++) {
        if (m.script != i)
            continue;
        mt_buf_printf(b, "  %s %s:%s", m.gauge ? "gauge" : "counter", m.name,
                      m.nseries ? "" : " (no value yet)");
        struct mt_script_series se;
        for (int j = 0; mt_scripts_series(sc, k, j, &se) == 0; j++) {
            mt_buf_printf(b, " %s", se.nlabels ? "{" : "");
            series_labels(b, &se, false);
            mt_buf_printf(b, "%s%.15g", se.nlabels ? "} " : "", se.value);
        }
        mt_buf_printf(b, "\n");
    }
}

static void json_script_extras(struct mt_buf *b, const struct mt_scripts *sc, int i)
{
    int owner, n = 0;
    const char *name;
    mt_buf_printf(b, ", \"commands\": [");
    for (int k = 0; (name = mt_scripts_command_name(sc, k, &owner)) != NULL; k++)
        if (owner == i)
            mt_buf_printf(b, "%s\"%s\"", n++ ? ", " : "", name);
    mt_buf_printf(b, "], \"metrics\": [");
    n = 0;
    struct mt_script_metric m;
    for (int k = 0; mt_scripts_metric(sc, k, &m) == 0; k++) {
        if (m.script != i)
            continue;
        mt_buf_printf(b, "%s{\"name\": \"%s\", \"type\": \"%s\", \"help\": \"", n++ ? ", " : "",
                      m.name, m.gauge ? "gauge" : "counter");
        mt_buf_json(b, m.help);
        mt_buf_printf(b, "\", \"series\": [");
        struct mt_script_series se;
        for (int j = 0; mt_scripts_series(sc, k, j, &se) == 0; j++) {
            mt_buf_printf(b, "%s{\"labels\": {", j ? ", " : "");
            series_labels(b, &se, true);
            mt_buf_printf(b, "}, \"value\": %.15g}", se.value);
        }
        mt_buf_printf(b, "]}");
    }
    mt_buf_printf(b, "]");
}

/* Script i's counters and its -S spec; false past the last script. */
static bool script_at(const struct mt_tunnel *t, int i, struct mt_script_info *si,
                      const struct mt_script_spec **spec)
{
    if (i >= mt_scripts_count(t->scripts) || mt_scripts_info(t->scripts, i, si) < 0)
        return false;
    *spec = &t->cfg->scripts[i];
    return true;
}

void mt_report_show(struct mt_tunnel *t, double started, struct mt_buf *b)
{
    const struct mt_config *cfg = t->cfg;
    double now = ev_now(t->loop);
    char when[32];

    wall_time(started, when, sizeof when);
    mt_buf_printf(b, "interface: %s\n", t->ifname);
    mt_buf_printf(b, "  device: %s, mtu %d%s\n", cfg->tap ? "tap" : "tun", cfg->mtu,
                  t->vnet ? ", offloads" : "");
    for (int i = 0; i < cfg->naddrs; i++) {
        char pfx[MT_PREFIX_STRLEN];
        mt_buf_printf(b, "  address: %s\n", mt_prefix_str(&cfg->addrs[i], pfx, sizeof pfx));
    }
    mt_buf_printf(b, "  transport: %s %s, %s port %u\n", t->ops->name, role_name(t),
                  cfg->role == MT_ROLE_SERVER ? (cfg->listen[0] ? cfg->listen : "any") : cfg->host,
                  cfg->port);
    mt_buf_printf(b, "  process: pid %d, up since %s (%.0f s), %d peer%s (max %d)\n", (int)getpid(),
                  when, now - started, t->npeers, t->npeers == 1 ? "" : "s", cfg->max_peers);

    for (struct mt_tpeer *p = t->peers; p; p = p->next) {
        const struct mt_peer_stats *s = &p->pub.stats;
        wall_time(p->since, when, sizeof when);
        mt_buf_printf(b, "\npeer: %s\n", p->pub.addr);
        if (strcmp(p->pub.name, p->pub.addr) != 0)
            mt_buf_printf(b, "  name: %s\n", p->pub.name);
        mt_buf_printf(b, "  id: %u\n  up since: %s (%.0f s)\n", p->pub.id, when, now - p->since);
        mt_buf_printf(b, "  last packet: %.1f s ago\n", now - p->last_rx);
        mt_buf_printf(b, "  rx: %llu packets, %llu bytes\n  tx: %llu packets, %llu bytes\n",
                      (unsigned long long)s->rx_packets, (unsigned long long)s->rx_bytes,
                      (unsigned long long)s->tx_packets, (unsigned long long)s->tx_bytes);
        mt_buf_printf(b, "  drops: %llu\n  inner addresses: ", (unsigned long long)s->drops);
        size_t n = peer_routes(t, p, b, MAX_SHOWN_ROUTES, ", ", false);
        if (n == 0)
            mt_buf_printf(b, "(none learned)");
        else if (n > MAX_SHOWN_ROUTES)
            mt_buf_printf(b, " and %zu more", n - MAX_SHOWN_ROUTES);
        mt_buf_printf(b, "\n");
    }

    struct mt_script_info si;
    const struct mt_script_spec *spec;
    for (int i = 0; script_at(t, i, &si, &spec); i++) {
        mt_buf_printf(b, "\nscript: %s\n", spec->path);
        if (spec->nargs > 0) {
            mt_buf_printf(b, "  settings:");
            for (int k = 0; k < spec->nargs; k++)
                mt_buf_printf(b, " %s=%s", spec->keys[k], spec->values[k]);
            mt_buf_printf(b, "\n");
        }
        mt_buf_printf(b, "  calls: %llu, errors: %llu, budget aborts: %llu, memory aborts: %llu\n",
                      (unsigned long long)si.calls, (unsigned long long)si.errors,
                      (unsigned long long)si.budget_aborts, (unsigned long long)si.memory_aborts);
        mt_buf_printf(b, "  verdicts:");
        for (int v = 0; v < 4; v++)
            mt_buf_printf(b, " %s %llu", verdict_names[v], (unsigned long long)si.verdicts[v]);
        mt_buf_printf(b, "\n");
        if (si.samples > 0)
            mt_buf_printf(b, "  hook time: p50 %.1f us, p99 %.1f us (%u sampled calls)\n",
                          si.p50 * 1e6, si.p99 * 1e6, si.samples);
        show_script_extras(b, t->scripts, i);
    }

    mt__capture_show(t, b);

    mt_buf_printf(b, "\ncounters:\n");
    for (size_t i = 0; i < NCOUNTERS; i++)
        mt_buf_printf(b, "  %s: %llu\n", counters[i].name, counter(t, i));
}

void mt_report_json(struct mt_tunnel *t, double started, struct mt_buf *b)
{
    const struct mt_config *cfg = t->cfg;
    double now = ev_now(t->loop);

    mt_buf_printf(b, "{\"interface\": \"");
    mt_buf_json(b, t->ifname);
    mt_buf_printf(b, "\", \"device\": \"%s\", \"mtu\": %d, \"offload\": %s, \"addresses\": [",
                  cfg->tap ? "tap" : "tun", cfg->mtu, t->vnet ? "true" : "false");
    for (int i = 0; i < cfg->naddrs; i++) {
        char pfx[MT_PREFIX_STRLEN];
        mt_buf_printf(b, "%s\"%s\"", i ? ", " : "", mt_prefix_str(&cfg->addrs[i], pfx, sizeof pfx));
    }
    mt_buf_printf(b, "],\n \"transport\": \"%s\", \"role\": \"%s\", \"host\": \"", t->ops->name,
                  role_name(t));
    mt_buf_json(b, cfg->role == MT_ROLE_SERVER ? cfg->listen : cfg->host);
    mt_buf_printf(b, "\", \"port\": %u, \"pid\": %d, \"started\": %.3f, \"uptime\": %.3f,\n",
                  cfg->port, (int)getpid(), started, now - started);
    mt_buf_printf(b, " \"max_peers\": %d, \"peers\": [", cfg->max_peers);
    for (struct mt_tpeer *p = t->peers; p; p = p->next) {
        const struct mt_peer_stats *s = &p->pub.stats;
        mt_buf_printf(b, "%s\n  {\"addr\": \"", p == t->peers ? "" : ",");
        mt_buf_json(b, p->pub.addr);
        mt_buf_printf(b, "\", \"name\": \"");
        mt_buf_json(b, p->pub.name);
        mt_buf_printf(b,
                      "\", \"id\": %u, \"since\": %.3f, \"last_rx\": %.3f, \"last_tx\": %.3f, "
                      "\"rx_packets\": %llu, \"rx_bytes\": %llu, \"tx_packets\": %llu, "
                      "\"tx_bytes\": %llu, \"drops\": %llu, \"inner\": [",
                      p->pub.id, p->since, p->last_rx, p->last_tx,
                      (unsigned long long)s->rx_packets, (unsigned long long)s->rx_bytes,
                      (unsigned long long)s->tx_packets, (unsigned long long)s->tx_bytes,
                      (unsigned long long)s->drops);
        size_t n = peer_routes(t, p, b, MAX_SHOWN_ROUTES, ", ", true);
        mt_buf_printf(b, "], \"inner_total\": %zu}", n);
    }
    mt_buf_printf(b, "],\n \"scripts\": [");
    struct mt_script_info si;
    const struct mt_script_spec *spec;
    for (int i = 0; script_at(t, i, &si, &spec); i++) {
        mt_buf_printf(b, "%s\n  {\"file\": \"", i ? "," : "");
        mt_buf_json(b, spec->path);
        mt_buf_printf(b, "\", \"settings\": {");
        for (int k = 0; k < spec->nargs; k++) {
            mt_buf_printf(b, "%s\"", k ? ", " : "");
            mt_buf_json(b, spec->keys[k]);
            mt_buf_printf(b, "\": \"");
            mt_buf_json(b, spec->values[k]);
            mt_buf_printf(b, "\"");
        }
        mt_buf_printf(b,
                      "}, \"calls\": %llu, \"errors\": %llu, \"budget_aborts\": %llu, "
                      "\"memory_aborts\": %llu, \"verdicts\": {",
                      (unsigned long long)si.calls, (unsigned long long)si.errors,
                      (unsigned long long)si.budget_aborts, (unsigned long long)si.memory_aborts);
        for (int v = 0; v < 4; v++)
            mt_buf_printf(b, "%s\"%s\": %llu", v ? ", " : "", verdict_names[v],
                          (unsigned long long)si.verdicts[v]);
        mt_buf_printf(b, "}, \"hook_samples\": %u, \"hook_p50\": %.9f, \"hook_p99\": %.9f",
                      si.samples, si.p50, si.p99);
        json_script_extras(b, t->scripts, i);
        mt_buf_printf(b, "}");
    }
    mt_buf_printf(b, "],\n \"captures\": [");
    mt__capture_json(t, b);
    mt_buf_printf(b, "],\n \"counters\": {");
    for (size_t i = 0; i < NCOUNTERS; i++)
        mt_buf_printf(b, "%s\"%s\": %llu", i ? ", " : "", counters[i].name, counter(t, i));
    mt_buf_printf(b, "}}\n");
}

void mt_report_counters(const struct mt_stats *s, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz,
             "device rx %llu/%llu B tx %llu/%llu B (errors %llu), network rx %llu/%llu B tx "
             "%llu/%llu B, not connected %llu, no route %llu, script drops %llu, replies %llu, "
             "queue drops %llu, bad frames %llu, too big %llu, bad offloads %llu, script errors "
             "%llu (budget %llu, memory %llu), reloads %llu (failed %llu), udp gso sends %llu, "
             "gro reads %llu",
             (unsigned long long)s->dev_rx_packets, (unsigned long long)s->dev_rx_bytes,
             (unsigned long long)s->dev_tx_packets, (unsigned long long)s->dev_tx_bytes,
             (unsigned long long)s->dev_tx_errors, (unsigned long long)s->net_rx_packets,
             (unsigned long long)s->net_rx_bytes, (unsigned long long)s->net_tx_packets,
             (unsigned long long)s->net_tx_bytes, (unsigned long long)s->not_connected,
             (unsigned long long)s->no_route, (unsigned long long)s->script_drops,
             (unsigned long long)s->script_replies, (unsigned long long)s->queue_drops,
             (unsigned long long)s->bad_frames, (unsigned long long)s->too_big,
             (unsigned long long)s->bad_offloads, (unsigned long long)s->script_errors,
             (unsigned long long)s->budget_aborts, (unsigned long long)s->memory_aborts,
             (unsigned long long)s->reloads, (unsigned long long)s->reload_failures,
             (unsigned long long)s->udp_gso_sends, (unsigned long long)s->udp_gro_reads);
}

void mt_report_status(struct mt_tunnel *t, const char *why)
{
    char line[1024];
    double now = ev_now(t->loop);
    mt_report_counters(&t->stats, line, sizeof line);
    mt_info("status (%s): %d peer%s, %s", why, t->npeers, t->npeers == 1 ? "" : "s", line);
    for (struct mt_tpeer *p = t->peers; p; p = p->next) {
        const struct mt_peer_stats *s = &p->pub.stats;
        bool named = strcmp(p->pub.name, p->pub.addr) != 0;
        mt_info("status: peer %s (%s%sid %u) up %.0f s, last packet %.1f s ago: rx %llu/%llu B "
                "tx %llu/%llu B, drops %llu",
                p->pub.addr, named ? p->pub.name : "", named ? ", " : "", p->pub.id, now - p->since,
                now - p->last_rx, (unsigned long long)s->rx_packets,
                (unsigned long long)s->rx_bytes, (unsigned long long)s->tx_packets,
                (unsigned long long)s->tx_bytes, (unsigned long long)s->drops);
    }
    struct mt_script_info si;
    for (int i = 0; mt_scripts_info(t->scripts, i, &si) == 0; i++)
        mt_info("status: script %s: calls %llu, errors %llu (budget %llu, memory %llu), "
                "verdicts pass %llu drop %llu reply %llu route %llu",
                t->cfg->scripts[i].path, (unsigned long long)si.calls,
                (unsigned long long)si.errors, (unsigned long long)si.budget_aborts,
                (unsigned long long)si.memory_aborts, (unsigned long long)si.verdicts[0],
                (unsigned long long)si.verdicts[1], (unsigned long long)si.verdicts[2],
                (unsigned long long)si.verdicts[3]);
}

/* One metric family's header. */
static void family(struct mt_buf *b, const char *name, const char *type, const char *help)
{
    mt_buf_printf(b, "# HELP moontun_%s %s\n# TYPE moontun_%s %s\n", name, help, name, type);
}

static void peer_labels(struct mt_buf *b, const struct mt_tpeer *p)
{
    mt_buf_printf(b, "{peer=\"");
    mt_buf_label(b, p->pub.addr);
    mt_buf_printf(b, "\",name=\"");
    mt_buf_label(b, p->pub.name);
    mt_buf_printf(b, "\"}");
}

static void script_labels(struct mt_buf *b, const struct mt_tunnel *t, int i, const char *extra)
{
    mt_buf_printf(b, "{script=\"");
    mt_buf_label(b, t->cfg->scripts[i].path);
    mt_buf_printf(b, "\",index=\"%d\"%s}", i, extra);
}

/* The metrics scripts declared: one family per name (scripts may share one; their series
 * differ by the script label), in declaration order. HELP escapes backslashes. */
static void script_metrics(const struct mt_tunnel *t, struct mt_buf *b)
{
    struct mt_script_metric m, o;
    for (int k = 0; mt_scripts_metric(t->scripts, k, &m) == 0; k++) {
        bool seen = false;
        for (int e = 0; e < k && !seen; e++)
            seen = mt_scripts_metric(t->scripts, e, &o) == 0 && strcmp(o.name, m.name) == 0;
        if (seen)
            continue;
        mt_buf_printf(b, "# HELP moontun_script_%s ", m.name);
        for (const char *h = m.help; *h; h++)
            mt_buf_add(b, *h == '\\' ? "\\\\" : h, *h == '\\' ? 2 : 1);
        mt_buf_printf(b, "\n# TYPE moontun_script_%s %s\n", m.name, m.gauge ? "gauge" : "counter");
        for (int e = k; mt_scripts_metric(t->scripts, e, &o) == 0; e++) {
            if (strcmp(o.name, m.name) != 0)
                continue;
            struct mt_script_series se;
            for (int j = 0; mt_scripts_series(t->scripts, e, j, &se) == 0; j++) {
                mt_buf_printf(b, "moontun_script_%s{script=\"", m.name);
                mt_buf_label(b, t->cfg->scripts[o.script].path);
                mt_buf_printf(b, "\",index=\"%d\"%s", o.script, se.nlabels ? "," : "");
                series_labels(b, &se, false);
                mt_buf_printf(b, "} %.17g\n", se.value);
            }
        }
    }
}

void mt_report_metrics(struct mt_tunnel *t, double started, struct mt_buf *b)
{
    const struct mt_config *cfg = t->cfg;
    double now = ev_now(t->loop);

    family(b, "info", "gauge", "the instance: interface, device, transport and role");
    mt_buf_printf(b, "moontun_info{interface=\"");
    mt_buf_label(b, t->ifname);
    mt_buf_printf(b, "\",device=\"%s\",transport=\"%s\",role=\"%s\",version=\"%s\"} 1\n",
                  cfg->tap ? "tap" : "tun", t->ops->name, role_name(t), MOONTUN_VERSION);
    family(b, "uptime_seconds", "gauge", "seconds since the tunnel came up");
    mt_buf_printf(b, "moontun_uptime_seconds %.3f\n", now - started);
    family(b, "peers", "gauge", "live peers");
    mt_buf_printf(b, "moontun_peers %d\n", t->npeers);
    for (size_t i = 0; i < NCOUNTERS; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s_total", counters[i].name);
        family(b, name, "counter", counters[i].help);
        mt_buf_printf(b, "moontun_%s %llu\n", name, counter(t, i));
    }

    static const struct {
        const char *name, *help;
        size_t off;
    } pstats[] = {
        {"peer_rx_packets_total", "packets received from the peer",
         offsetof(struct mt_peer_stats, rx_packets)},
        {"peer_rx_bytes_total", "bytes received from the peer",
         offsetof(struct mt_peer_stats, rx_bytes)},
        {"peer_tx_packets_total", "packets sent to the peer",
         offsetof(struct mt_peer_stats, tx_packets)},
        {"peer_tx_bytes_total", "bytes sent to the peer", offsetof(struct mt_peer_stats, tx_bytes)},
        {"peer_drops_total", "packets for the peer dropped (queue full, send error)",
         offsetof(struct mt_peer_stats, drops)},
    };
    for (size_t k = 0; k < sizeof pstats / sizeof pstats[0]; k++) {
        family(b, pstats[k].name, "counter", pstats[k].help);
        for (struct mt_tpeer *p = t->peers; p; p = p->next) {
            mt_buf_printf(b, "moontun_%s", pstats[k].name);
            peer_labels(b, p);
            mt_buf_printf(b, " %llu\n",
                          (unsigned long long)*(const uint64_t *)((const char *)&p->pub.stats +
                                                                  pstats[k].off));
        }
    }
    family(b, "peer_up_seconds", "gauge", "seconds since the peer came up");
    for (struct mt_tpeer *p = t->peers; p; p = p->next) {
        mt_buf_printf(b, "moontun_peer_up_seconds");
        peer_labels(b, p);
        mt_buf_printf(b, " %.3f\n", now - p->since);
    }
    family(b, "peer_last_rx_seconds", "gauge", "seconds since the last packet from the peer");
    for (struct mt_tpeer *p = t->peers; p; p = p->next) {
        mt_buf_printf(b, "moontun_peer_last_rx_seconds");
        peer_labels(b, p);
        mt_buf_printf(b, " %.3f\n", now - p->last_rx);
    }

    int nscripts = mt_scripts_count(t->scripts);
    struct mt_script_info si[MT_MAX_SCRIPTS];
    for (int i = 0; i < nscripts; i++)
        if (mt_scripts_info(t->scripts, i, &si[i]) < 0)
            nscripts = i;
    static const struct {
        const char *name, *help;
        size_t off;
    } sstats[] = {
        {"script_calls_total", "packet handler calls", offsetof(struct mt_script_info, calls)},
        {"script_errors_total", "failed calls (aborts included)",
         offsetof(struct mt_script_info, errors)},
        {"script_budget_aborts_total", "calls stopped by the instruction budget or time bound",
         offsetof(struct mt_script_info, budget_aborts)},
        {"script_memory_aborts_total", "calls stopped by the memory cap",
         offsetof(struct mt_script_info, memory_aborts)},
    };
    for (size_t k = 0; k < sizeof sstats / sizeof sstats[0]; k++) {
        family(b, sstats[k].name, "counter", sstats[k].help);
        for (int i = 0; i < nscripts; i++) {
            mt_buf_printf(b, "moontun_%s", sstats[k].name);
            script_labels(b, t, i, "");
            mt_buf_printf(
                b, " %llu\n",
                (unsigned long long)*(const uint64_t *)((const char *)&si[i] + sstats[k].off));
        }
    }
    family(b, "script_verdicts_total", "counter", "verdicts returned by packet handlers");
    for (int i = 0; i < nscripts; i++)
        for (int v = 0; v < 4; v++) {
            char extra[32];
            snprintf(extra, sizeof extra, ",verdict=\"%s\"", verdict_names[v]);
            mt_buf_printf(b, "moontun_script_verdicts_total");
            script_labels(b, t, i, extra);
            mt_buf_printf(b, " %llu\n", (unsigned long long)si[i].verdicts[v]);
        }
    family(b, "script_hook_seconds", "gauge",
           "packet handler call time (one call in 16 timed, the last 256 of those), by quantile");
    for (int i = 0; i < nscripts; i++) {
        if (si[i].samples == 0)
            continue;
        mt_buf_printf(b, "moontun_script_hook_seconds");
        script_labels(b, t, i, ",quantile=\"0.5\"");
        mt_buf_printf(b, " %.9f\n", si[i].p50);
        mt_buf_printf(b, "moontun_script_hook_seconds");
        script_labels(b, t, i, ",quantile=\"0.99\"");
        mt_buf_printf(b, " %.9f\n", si[i].p99);
    }
    script_metrics(t, b);
}
