/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer (heap, single owner) and newline framing for the
 * stdio upstream transport. The data is always NUL-terminated for convenience
 * but may contain NULs.
 */
#ifndef SG_BASE_BUF_H
#define SG_BASE_BUF_H

#include "base/sg.h"

typedef struct sg_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t off; /* consumed prefix, for framing */
} sg_buf_t;

#define SG_BUF_INIT ((sg_buf_t){ NULL, 0, 0, 0 })

void sg_buf_dispose(sg_buf_t *b);
void sg_buf_reset(sg_buf_t *b);
void sg_buf_reserve(sg_buf_t *b, size_t extra);
void sg_buf_append(sg_buf_t *b, const void *p, size_t len);
void sg_buf_append_str(sg_buf_t *b, sg_str_t s);
void sg_buf_append_cstr(sg_buf_t *b, const char *s);
void sg_buf_append_char(sg_buf_t *b, char c);
void sg_buf_printf(sg_buf_t *b, const char *fmt, ...) SG_PRINTF(2, 3);
/* The unconsumed bytes. */
static inline sg_str_t sg_buf_str(const sg_buf_t *b)
{
    return (sg_str_t){ b->data != NULL ? b->data + b->off : "", b->len - b->off };
}
/* Drops n bytes from the front of the unconsumed part. */
void sg_buf_consume(sg_buf_t *b, size_t n);
/*
 * Takes one newline-terminated line (without the '\n' and a trailing '\r') off
 * the front. Returns true and sets *line (borrowed until the next mutation of b)
 * if a whole line is buffered; false otherwise.
 */
bool sg_buf_take_line(sg_buf_t *b, sg_str_t *line);
/* Moves the unconsumed bytes to the front (call after taking lines). */
void sg_buf_compact(sg_buf_t *b);
/* Hands the data over to the caller (NUL-terminated, caller frees); b becomes empty. */
char *sg_buf_steal(sg_buf_t *b, size_t *len);

#endif
