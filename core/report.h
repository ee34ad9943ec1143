/* What a running tunnel tells its operator: moontun show (text and JSON) and the Prometheus
 * text exposition of moontun metrics and GET /metrics. Read-only over the tunnel. */
#ifndef MOONTUN_CORE_REPORT_H
#define MOONTUN_CORE_REPORT_H

#include "ctlproto.h"
#include "tunnel.h"

/* started: when the tunnel came up (ev_now). */
void mt_report_show(struct mt_tunnel *t, double started, struct mt_buf *b);
void mt_report_json(struct mt_tunnel *t, double started, struct mt_buf *b);
void mt_report_metrics(struct mt_tunnel *t, double started, struct mt_buf *b);

/* The process counters in one line, as the exit summary ("stopped: ...") prints them. */
void mt_report_counters(const struct mt_stats *s, char *buf, size_t bufsz);
/* Logs the status, one block like the exit summary: the counters, a line per peer and per
 * script (SIGUSR1, SIGUSR2; why names the signal). */
void mt_report_status(struct mt_tunnel *t, const char *why);

#endif
