/* SPDX-License-Identifier: Apache-2.0 */
#include "base/metrics.h"

static sg_metric_t *registry;

/* upper bounds in microseconds */
static const uint64_t bounds[SG_METRIC_BUCKETS] = { 25,   50,   100,   250,   500,    1000,
                                                    2500, 5000, 10000, 50000, 250000, 1000000 };

void sg_metrics_register(sg_metric_t *m)
{
    for (sg_metric_t *p = registry; p != NULL; p = p->_next) {
        if (p == m) {
            return;
        }
    }
    m->_next = registry;
    registry = m;
}

void sg_metric_observe_us(sg_metric_t *m, uint64_t us)
{
    size_t i = 0;
    while (i < SG_METRIC_BUCKETS && us > bounds[i]) {
        i++;
    }
    m->buckets[i]++;
    m->sum_us += us;
    m->count++;
}

static void render_histogram(sg_buf_t *out, const sg_metric_t *m)
{
    uint64_t cum = 0;
    const char *sep = m->labels != NULL ? "," : "";
    const char *labels = m->labels != NULL ? m->labels : "";
    for (size_t i = 0; i <= SG_METRIC_BUCKETS; i++) {
        cum += m->buckets[i];
        if (i < SG_METRIC_BUCKETS) {
            sg_buf_printf(out, "%s_bucket{%s%sle=\"%.6f\"} %llu\n", m->name, labels, sep,
                          (double)bounds[i] / 1e6, (unsigned long long)cum);
        } else {
            sg_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", m->name, labels, sep,
                          (unsigned long long)cum);
        }
    }
    sg_buf_printf(out, "%s_sum%s%s%s %.6f\n", m->name, m->labels ? "{" : "", labels,
                  m->labels ? "}" : "", (double)m->sum_us / 1e6);
    sg_buf_printf(out, "%s_count%s%s%s %llu\n", m->name, m->labels ? "{" : "", labels,
                  m->labels ? "}" : "", (unsigned long long)m->count);
}

void sg_metrics_render(sg_buf_t *out)
{
    static const char *const types[] = { "counter", "gauge", "histogram" };
    const char *last_name = NULL;
    for (const sg_metric_t *m = registry; m != NULL; m = m->_next) {
        if (last_name == NULL || strcmp(last_name, m->name) != 0) {
            sg_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                          types[m->type]);
            last_name = m->name;
        }
        if (m->type == SG_METRIC_HISTOGRAM) {
            render_histogram(out, m);
        } else if (m->labels != NULL) {
            sg_buf_printf(out, "%s{%s} %lld\n", m->name, m->labels, (long long)m->value);
        } else {
            sg_buf_printf(out, "%s %lld\n", m->name, (long long)m->value);
        }
    }
}
