/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A text/event-stream parser (WHATWG HTML, "event stream interpretation"), fed the bytes of
 * one stream in chunks of any size. Lines end in CRLF, LF or CR (a CR/LF pair may be split
 * across chunks); a leading BOM is skipped; comments, unknown fields and events with an
 * `event:` type other than "message" are ignored; an event with no data (or only an empty
 * `data:`, a "priming" event) is dispatched without a callback. Pure: no I/O.
 * Used by the Streamable HTTP upstream transport (gateway/upstream_http.c).
 */
#ifndef SG_CORE_SSE_H
#define SG_CORE_SSE_H

#include "base/buf.h"
#include "base/err.h"
#include "base/sg.h"

#define SG_SSE_MAX_DATA     ((size_t)64 << 20) /* one event's data; more is SG_ETOOBIG */
#define SG_SSE_MAX_ID       1024               /* longer `id:` values are ignored */
#define SG_SSE_MAX_RETRY_MS 60000              /* `retry:` values are capped to this */

/* The parser state; embed it zero-initialised, release it with sg_sse_dispose. */
typedef struct sg_sse {
    char *last_id;     /* the last event ID at the last dispatch; NULL until a non-empty one */
    uint64_t retry_ms; /* the last `retry:` value, valid when has_retry */
    bool has_retry;
    sg_buf_t _line;    /* an unterminated line carried over from the previous chunk */
    sg_buf_t _data;    /* data lines of the event being read, each followed by LF */
    sg_buf_t _id;      /* the last event ID buffer (persists across events) */
    bool _not_message; /* the event has an `event:` type other than "message" */
    bool _skip_lf;     /* the previous line ended in CR: a leading LF completes a CRLF */
    bool _started;     /* past a possible leading BOM */
} sg_sse_t;

/*
 * One event's data: the data lines joined with LF, NUL-terminated, len bytes without the
 * NUL. The callback takes ownership of data (free() it).
 */
typedef void (*sg_sse_event_cb)(void *arg, char *data, size_t len);

/*
 * Feeds n bytes of the stream (n may be 0); each complete event with data goes to cb, in
 * order, before this returns. SG_OK, or SG_ETOOBIG when an event's data or a line grows
 * past SG_SSE_MAX_DATA (the stream is then unusable).
 */
int sg_sse_feed(sg_sse_t *p, const char *s, size_t n, sg_sse_event_cb cb, void *arg) SG_MUSTCHECK;
/*
 * The stream ended: drops a partly read event (WHATWG discards it) and readies the parser
 * for a new stream (a resumption), keeping last_id and the retry value.
 */
void sg_sse_end_stream(sg_sse_t *p);
/* Frees what p holds and zeroes it. */
void sg_sse_dispose(sg_sse_t *p);

#endif
