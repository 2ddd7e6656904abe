/* SPDX-License-Identifier: Apache-2.0 */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"

void sg_buf_dispose(sg_buf_t *b)
{
    free(b->data);
    *b = SG_BUF_INIT;
}

void sg_buf_reset(sg_buf_t *b)
{
    b->len = 0;
    b->off = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

void sg_buf_reserve(sg_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return;
    }
    size_t cap = b->cap != 0 ? b->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    b->data = sg_xrealloc(b->data, cap);
    b->cap = cap;
}

void sg_buf_append(sg_buf_t *b, const void *p, size_t len)
{
    sg_buf_reserve(b, len);
    if (len != 0) {
        memcpy(b->data + b->len, p, len);
    }
    b->len += len;
    b->data[b->len] = '\0';
}

void sg_buf_append_str(sg_buf_t *b, sg_str_t s)
{
    sg_buf_append(b, s.ptr, s.len);
}

void sg_buf_append_cstr(sg_buf_t *b, const char *s)
{
    sg_buf_append(b, s, strlen(s));
}

void sg_buf_append_char(sg_buf_t *b, char c)
{
    sg_buf_append(b, &c, 1);
}

void sg_buf_printf(sg_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(small)) {
        sg_buf_append(b, small, (size_t)n);
        return;
    }
    sg_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sg_buf_consume(sg_buf_t *b, size_t n)
{
    SG_BUG_ON(n > b->len - b->off);
    b->off += n;
    if (b->off == b->len) {
        b->off = 0;
        b->len = 0;
        if (b->data != NULL) {
            b->data[0] = '\0';
        }
    }
}

bool sg_buf_take_line(sg_buf_t *b, sg_str_t *line)
{
    if (b->data == NULL || b->off >= b->len) {
        return false;
    }
    char *start = b->data + b->off;
    char *nl = memchr(start, '\n', b->len - b->off);
    if (nl == NULL) {
        return false;
    }
    size_t n = (size_t)(nl - start);
    size_t used = n + 1;
    if (n > 0 && start[n - 1] == '\r') {
        n--;
    }
    *line = (sg_str_t){ start, n };
    b->off += used;
    return true;
}

void sg_buf_compact(sg_buf_t *b)
{
    if (b->off == 0) {
        return;
    }
    size_t rest = b->len - b->off;
    memmove(b->data, b->data + b->off, rest);
    b->len = rest;
    b->off = 0;
    b->data[b->len] = '\0';
}

char *sg_buf_steal(sg_buf_t *b, size_t *len)
{
    sg_buf_compact(b);
    char *d = b->data != NULL ? b->data : sg_xstrdup("");
    if (len != NULL) {
        *len = b->len;
    }
    *b = SG_BUF_INIT;
    return d;
}
