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

#endif
