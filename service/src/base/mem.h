/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation that aborts on out-of-memory (memory stays bounded by admission
 * limits instead of a recovery path on every allocation).
 */
#ifndef SG_BASE_MEM_H
#define SG_BASE_MEM_H

#include "base/sg.h"

void *sg_xmalloc(size_t size);
void *sg_xcalloc(size_t count, size_t size);
void *sg_xrealloc(void *p, size_t size);
char *sg_xstrdup(const char *s);
/* Copies len bytes and appends a NUL; the result is owned by the caller. */
char *sg_xmemdup(const void *p, size_t len);
/* A NUL-terminated heap copy of a slice. */
static inline char *sg_xstrdup_str(sg_str_t s)
{
    return sg_xmemdup(s.ptr, s.len);
}

#endif
