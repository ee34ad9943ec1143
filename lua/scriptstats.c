/* Per-script counters read out for the control plane (moontun show, metrics): the chain
 * (script.c) counts, this file turns the counts and the ring of hook durations into numbers.
 * Never on the packet path: a sort per question, not per packet. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

int mt_scripts_count(const struct mt_scripts *s)
{
    return s != NULL ? s->nscripts : 0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int mt_scripts_info(const struct mt_scripts *s, int i, struct mt_script_info *out)
{
    if (s == NULL || i < 0 || i >= s->nscripts)
        return -ENOENT;
    const struct mt__script_counts *c = &s->counts[i];
    memset(out, 0, sizeof *out);
    out->name = s->names[i];
    out->calls = c->calls;
    out->errors = c->errors;
    out->budget_aborts = c->budget_aborts;
    out->memory_aborts = c->memory_aborts;
    memcpy(out->verdicts, c->verdicts, sizeof out->verdicts);
    unsigned n = c->nsamples < MT_HOOK_SAMPLES ? c->nsamples : MT_HOOK_SAMPLES;
    out->samples = n;
    if (n > 0) {
        float sorted[MT_HOOK_SAMPLES];
        memcpy(sorted, c->hook_time, n * sizeof sorted[0]);
        qsort(sorted, n, sizeof sorted[0], cmp_float);
        out->p50 = sorted[(n - 1) / 2];
        out->p99 = sorted[(n - 1) * 99 / 100];
    }
    return 0;
}
