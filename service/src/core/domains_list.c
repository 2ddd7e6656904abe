/* SPDX-License-Identifier: Apache-2.0 */
/*
 * args_domain entry lists: exact names (also matching every host whose
 * registrable domain they are), "*.suffix" globs and IP literals, normalised
 * once at compile (lower case, punycode, canonical IP text) and kept sorted
 * for binary search.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <idn2.h>
#include <stdlib.h>

#include "base/mem.h"
#include "core/domains_int.h"

struct sg_domain_list {
    char **names; /* exact names and canonical IP literals, sorted */
    size_t nnames;
    char **suffixes; /* "ngrok.io" for "*.ngrok.io", sorted */
    size_t nsuffixes;
};


sg_domain_list_t *sg_domains_list_new(void)
{
    return sg_xcalloc(1, sizeof(sg_domain_list_t));
}

void sg_domains_list_free(sg_domain_list_t *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->nnames; i++) {
        free(l->names[i]);
    }
    for (size_t i = 0; i < l->nsuffixes; i++) {
        free(l->suffixes[i]);
    }
    free(l->names);
    free(l->suffixes);
    free(l);
}

static void push(char ***v, size_t *n, char *s)
{
    *v = sg_domains_grow(*v, *n, sizeof(char *));
    (*v)[(*n)++] = s;
}

static bool valid_name(const char *h)
{
    size_t n = strlen(h), label = 0;
    if (n == 0 || n > SG_DOMAINS_MAX_DNS_LEN) {
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63) {
                return false;
            }
            label = 0;
        } else if (sg_domains_is_alpha(c) || sg_domains_is_digit(c) || c == '-' || c == '_') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* Lower case, punycode, no trailing dot; IP literals canonical. Caller frees. */
static char *normalise_entry(const char *e, bool *ip)
{
    char out[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    struct in_addr a4;
    size_t n = strlen(e);
    *ip = true;
    if (n >= 2 && e[0] == '[' && e[n - 1] == ']' && n - 2 < sizeof(out)) {
        memcpy(out, e + 1, n - 2);
        out[n - 2] = '\0';
        return inet_pton(AF_INET6, out, &a6) == 1 && inet_ntop(AF_INET6, &a6, out, sizeof(out))
                       ? sg_xstrdup(out)
                       : NULL;
    }
    if (inet_pton(AF_INET6, e, &a6) == 1 && inet_ntop(AF_INET6, &a6, out, sizeof(out)) != NULL) {
        return sg_xstrdup(out);
    }
    if (inet_pton(AF_INET, e, &a4) == 1 && inet_ntop(AF_INET, &a4, out, sizeof(out)) != NULL) {
        return sg_xstrdup(out);
    }
    *ip = false;
    char *res = NULL;
    if (idn2_to_ascii_8z(e, &res, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK) {
        idn2_free(res);
        return NULL;
    }
    char *copy = sg_xstrdup(res);
    idn2_free(res);
    for (char *q = copy; *q != '\0'; q++) {
        *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
    }
    const char *last = strrchr(copy, '.');
    last = last != NULL ? last + 1 : copy;
    if (!valid_name(copy) || strspn(last, "0123456789") == strlen(last)) {
        free(copy);
        return NULL;
    }
    return copy;
}

int sg_domains_list_add(sg_domain_list_t *l, sg_str_t entry, sg_error_t *err)
{
    if (entry.len == 0 || entry.len > SG_DOMAINS_MAX_DNS_LEN + 2 ||
        memchr(entry.ptr, '\0', entry.len)) {
        return sg_error_set(err, SG_EINVAL, "must be a host name of 1-253 bytes");
    }
    char *e = sg_xstrdup_str(entry);
    size_t n = strlen(e);
    while (n > 1 && e[n - 1] == '.') {
        e[--n] = '\0';
    }
    bool glob = n > 2 && e[0] == '*' && e[1] == '.';
    const char *body = glob ? e + 2 : e;
    bool ip = false;
    char *norm = strchr(body, '*') == NULL ? normalise_entry(body, &ip) : NULL;
    free(e);
    if (norm == NULL || (glob && ip)) {
        free(norm);
        return sg_error_set(err, SG_EINVAL,
                            "must be a host name, \"*.\" followed by one, or an IP address");
    }
    if (glob) {
        push(&l->suffixes, &l->nsuffixes, norm);
    } else {
        push(&l->names, &l->nnames, norm);
    }
    return SG_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void sg_domains_list_seal(sg_domain_list_t *l)
{
    if (l->nnames > 1) {
        qsort(l->names, l->nnames, sizeof(char *), cmp_str);
    }
    if (l->nsuffixes > 1) {
        qsort(l->suffixes, l->nsuffixes, sizeof(char *), cmp_str);
    }
}

size_t sg_domains_list_count(const sg_domain_list_t *l)
{
    return l->nnames + l->nsuffixes;
}

static bool in_sorted(char *const *v, size_t n, const char *key)
{
    return n != 0 && bsearch(&key, v, n, sizeof(char *), cmp_str) != NULL;
}

bool sg_domains_match_host(const sg_domain_list_t *l, const char *host, const char *reg, bool ip)
{
    if (in_sorted(l->names, l->nnames, host) ||
        (reg != NULL && in_sorted(l->names, l->nnames, reg))) {
        return true;
    }
    for (const char *h = host; !ip && h != NULL; h = strchr(h, '.')) {
        h += *h == '.' ? 1 : 0;
        if (in_sorted(l->suffixes, l->nsuffixes, h)) {
            return true;
        }
    }
    return false;
}

bool sg_domains_list_match_host(const sg_domain_list_t *l, const char *host,
                                const char *registrable)
{
    bool ip = strchr(host, ':') != NULL;
    struct in_addr a;
    ip = ip || inet_pton(AF_INET, host, &a) == 1;
    return sg_domains_match_host(l, host, registrable, ip);
}
