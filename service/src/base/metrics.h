/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The process-wide metrics registry (one of the two allowed mutable globals):
 * counters, gauges and fixed-bucket latency histograms, rendered in the
 * Prometheus text format. Metrics are static objects registered once.
 */
#ifndef SG_BASE_METRICS_H
#define SG_BASE_METRICS_H

#include "base/buf.h"
#include "base/sg.h"

typedef enum sg_metric_type {
    SG_METRIC_COUNTER = 0,
    SG_METRIC_GAUGE,
    SG_METRIC_HISTOGRAM,
} sg_metric_type_t;

#define SG_METRIC_BUCKETS 12

typedef struct sg_metric {
    const char *name;   /* e.g. "sg_calls_total" */
    const char *labels; /* e.g. "decision=\"allow\"" or NULL */
    const char *help;
    sg_metric_type_t type;
    int64_t value;                           /* counter/gauge */
    uint64_t buckets[SG_METRIC_BUCKETS + 1]; /* histogram, microseconds; last is +Inf */
    uint64_t sum_us;
    uint64_t count;
    struct sg_metric *_next;
} sg_metric_t;

#define SG_METRIC_DEFINE(var, type_, name_, labels_, help_) \
    sg_metric_t var = { .name = (name_), .labels = (labels_), .help = (help_), .type = (type_) }

/* Registers m (static storage) once; registering twice is a no-op. */
void sg_metrics_register(sg_metric_t *m);
static inline void sg_metric_add(sg_metric_t *m, int64_t n)
{
    m->value += n;
}
static inline void sg_metric_set(sg_metric_t *m, int64_t v)
{
    m->value = v;
}
/* Records one observation in microseconds into a histogram. */
void sg_metric_observe_us(sg_metric_t *m, uint64_t us);
/* Appends every registered metric in Prometheus text format. */
void sg_metrics_render(sg_buf_t *out);

#endif
