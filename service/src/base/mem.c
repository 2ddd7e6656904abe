/* SPDX-License-Identifier: Apache-2.0 */
#include "base/mem.h"

#include <stdio.h>
#include <stdlib.h>

SG_NORETURN static void oom(size_t size)
{
    fprintf(stderr, "level=fatal msg=\"out of memory\" size=%zu\n", size);
    abort();
}

void *sg_xmalloc(size_t size)
{
    void *p = malloc(size != 0 ? size : 1);
    if (p == NULL) {
        oom(size);
    }
    return p;
}

void *sg_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count != 0 ? count : 1, size != 0 ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *sg_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size != 0 ? size : 1);
    if (q == NULL) {
        oom(size);
    }
    return q;
}

char *sg_xstrdup(const char *s)
{
    return sg_xmemdup(s, strlen(s));
}

char *sg_xmemdup(const void *p, size_t len)
{
    char *q = sg_xmalloc(len + 1);
    if (len != 0) {
        memcpy(q, p, len);
    }
    q[len] = '\0';
    return q;
}
