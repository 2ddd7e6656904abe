/* SPDX-License-Identifier: Apache-2.0 */
/* The text/event-stream parser (see sse.h). */
#include "core/sse.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

void sg_sse_dispose(sg_sse_t *p)
{
    sg_buf_dispose(&p->_line);
    sg_buf_dispose(&p->_data);
    sg_buf_dispose(&p->_id);
    free(p->last_id);
    memset(p, 0, sizeof(*p));
}

void sg_sse_end_stream(sg_sse_t *p)
{
    sg_buf_reset(&p->_line);
    sg_buf_reset(&p->_data);
    p->_not_message = false;
    p->_skip_lf = false;
    p->_started = false;
}

static void dispatch(sg_sse_t *p, sg_sse_event_cb cb, void *arg)
{
    free(p->last_id);
    p->last_id = p->_id.len != 0 ? sg_xmemdup(p->_id.data, p->_id.len) : NULL;
    bool is_message = !p->_not_message;
    p->_not_message = false;
    if (p->_data.len <= 1 || !is_message) {
        /* no data, `data:` with an empty value (a priming event), or another event type */
        sg_buf_reset(&p->_data);
        return;
    }
    size_t len = 0;
    char *s = sg_buf_steal(&p->_data, &len);
    s[--len] = '\0'; /* the LF after the last data line */
    cb(arg, s, len);
}

static void set_field(sg_sse_t *p, sg_str_t field, sg_str_t value)
{
    if (sg_str_eq_cstr(field, "event")) {
        p->_not_message = value.len != 0 && !sg_str_eq_cstr(value, "message");
    } else if (sg_str_eq_cstr(field, "id")) {
        if (value.len <= SG_SSE_MAX_ID && memchr(value.ptr, '\0', value.len) == NULL) {
            sg_buf_reset(&p->_id);
            sg_buf_append_str(&p->_id, value);
        }
    } else if (sg_str_eq_cstr(field, "retry")) {
        uint64_t ms = 0;
        for (size_t i = 0; i < value.len; i++) {
            if (value.ptr[i] < '0' || value.ptr[i] > '9') {
                return;
            }
            ms = SG_MIN(ms * 10 + (uint64_t)(value.ptr[i] - '0'), (uint64_t)SG_SSE_MAX_RETRY_MS);
        }
        if (value.len != 0) {
            p->retry_ms = ms;
            p->has_retry = true;
        }
    }
}

/* One line without its terminator. Returns SG_OK or SG_ETOOBIG. */
static int take_line(sg_sse_t *p, sg_str_t line, sg_sse_event_cb cb, void *arg)
{
    if (line.len == 0) {
        dispatch(p, cb, arg);
        return SG_OK;
    }
    if (line.ptr[0] == ':') {
        return SG_OK; /* a comment (keep-alive) */
    }
    sg_str_t field = line;
    sg_str_t value = SG_STR_LIT("");
    const char *colon = memchr(line.ptr, ':', line.len);
    if (colon != NULL) {
        field.len = (size_t)(colon - line.ptr);
        value = sg_str_n(colon + 1, line.len - field.len - 1);
        if (value.len != 0 && value.ptr[0] == ' ') {
            value.ptr++;
            value.len--;
        }
    }
    if (sg_str_eq_cstr(field, "data")) {
        if (p->_data.len + value.len + 1 > SG_SSE_MAX_DATA) {
            return SG_ETOOBIG;
        }
        sg_buf_append_str(&p->_data, value);
        sg_buf_append_char(&p->_data, '\n');
        return SG_OK;
    }
    set_field(p, field, value);
    return SG_OK;
}

int sg_sse_feed(sg_sse_t *p, const char *s, size_t n, sg_sse_event_cb cb, void *arg)
{
    if (!p->_started && n != 0) {
        p->_started = true;
        if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
            s += 3;
            n -= 3;
        }
    }
    while (n > 0) {
        if (p->_skip_lf) {
            p->_skip_lf = false;
            if (s[0] == '\n') {
                s++;
                n--;
                continue;
            }
        }
        size_t i = 0;
        while (i < n && s[i] != '\n' && s[i] != '\r') {
            i++;
        }
        if (p->_line.len + i > SG_SSE_MAX_DATA + 16) {
            return SG_ETOOBIG;
        }
        if (i == n) {
            sg_buf_append(&p->_line, s, n);
            return SG_OK;
        }
        p->_skip_lf = s[i] == '\r';
        sg_str_t line = sg_str_n(s, i);
        if (p->_line.len != 0) {
            sg_buf_append(&p->_line, s, i);
            line = sg_buf_str(&p->_line);
        }
        int rc = take_line(p, line, cb, arg);
        sg_buf_reset(&p->_line);
        if (rc != SG_OK) {
            return rc;
        }
        s += i + 1;
        n -= i + 1;
    }
    return SG_OK;
}
