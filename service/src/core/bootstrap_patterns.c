/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The string patterns of schema/bootstrap.schema.json, written as small
 * scanners over decoded UTF-8 (each says which pattern it is), and the PCRE2
 * compile check for regexes. Lengths are checked by the walker before these
 * run, so the regex compile is bounded.
 */
#include <stdio.h>

#include <pcre2.h>

#include "core/bootstrap_int.h"
#include "core/tenant.h"

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

const char *sg_bootstrap_test_name(sg_str_t s)
{
    return sg_name_is_valid(s) ? NULL : "must be 1-64 of [A-Za-z0-9_.-]";
}

const char *sg_bootstrap_test_rule_name(sg_str_t s)
{
    bool ok = sg_name_is_valid(s) && !sg_str_eq_cstr(s, "default");
    return ok ? NULL : "must be 1-64 of [A-Za-z0-9_.-], and not \"default\" (reserved)";
}

const char *sg_bootstrap_test_method(sg_str_t s)
{
    bool ok = s.len >= 1 && s.len <= 64;
    for (size_t i = 0; ok && i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c != '\0' && strchr("_/*?", c) != NULL);
    }
    return ok ? NULL : "must be an MCP method or a glob on one: 1-64 of [A-Za-z_/*?]";
}

const char *sg_bootstrap_test_arg_path(sg_str_t s)
{
    size_t seg = 0; /* characters in the current segment */
    bool ok = true;
    for (size_t i = 0; ok && i < s.len; i++) {
        if (s.ptr[i] == '\\') {
            ok = i + 1 < s.len && (s.ptr[i + 1] == '.' || s.ptr[i + 1] == '\\');
            i++;
            seg++;
        } else if (s.ptr[i] == '.') {
            ok = seg != 0;
            seg = 0;
        } else {
            seg++;
        }
    }
    return ok && seg != 0 ? NULL
                          : "must be a dotted argument path: no empty segment; \\ only before . "
                            "or \\";
}

const char *sg_bootstrap_test_prefix(sg_str_t s)
{
    return s.len == 0 || sg_name_is_valid(s) ? NULL : "must be \"\" or 1-64 of [A-Za-z0-9_.-]";
}

const char *sg_bootstrap_test_env_name(sg_str_t s)
{
    bool ok = s.len >= 1 && s.len <= 128 && !(s.ptr[0] >= '0' && s.ptr[0] <= '9');
    for (size_t i = 0; ok && i < s.len; i++) {
        ok = is_alnum((unsigned char)s.ptr[i]) || s.ptr[i] == '_';
    }
    return ok ? NULL : "must be an environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 128";
}

const char *sg_bootstrap_test_header_name(sg_str_t s)
{
    bool ok = s.len >= 1 && s.len <= 256;
    for (size_t i = 0; ok && i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        ok = is_alnum(c) || (c != '\0' && strchr("!#$%&'*+.^_`|~-", c) != NULL);
    }
    return ok ? NULL : "must be an HTTP header name (1-256 token characters)";
}

const char *sg_bootstrap_test_header_value(sg_str_t s)
{
    bool ok = memchr(s.ptr, '\r', s.len) == NULL && memchr(s.ptr, '\n', s.len) == NULL;
    return ok ? NULL : "must not contain CR or LF";
}

/* Length of "http://" or "https://" at the start of s, or 0. */
static size_t scheme_len(sg_str_t s)
{
    if (sg_str_has_prefix(s, "https://")) {
        return 8;
    }
    return sg_str_has_prefix(s, "http://") ? 7 : 0;
}

/* Bytes of s from off that may form a URL authority: [A-Za-z0-9._~[]:-]. */
static size_t authority_len(sg_str_t s, size_t off)
{
    size_t i = off;
    while (i < s.len &&
           (is_alnum((unsigned char)s.ptr[i]) || strchr("._~[]:-", s.ptr[i]) != NULL) &&
           s.ptr[i] != '\0') {
        i++;
    }
    return i - off;
}

const char *sg_bootstrap_test_url(sg_str_t s)
{
    size_t off = scheme_len(s), n = off != 0 ? authority_len(s, off) : 0;
    bool ok = n != 0;
    size_t i = off + n;
    if (ok && i < s.len) {
        ok = s.ptr[i] == '/' || s.ptr[i] == '?' || s.ptr[i] == '#';
        for (; ok && i < s.len; i++) {
            ok = s.ptr[i] >= '!' && s.ptr[i] <= '~';
        }
    }
    return ok ? NULL
              : "must be an http:// or https:// URL of printable ASCII without userinfo "
                "(credentials go in headers)";
}

const char *sg_bootstrap_test_origin(sg_str_t s)
{
    size_t off = scheme_len(s);
    bool ok = off != 0 && authority_len(s, off) == s.len - off && s.len > off;
    return ok ? NULL : "must be an origin: http(s)://host[:port], nothing after";
}

const char *sg_bootstrap_test_api_key(sg_str_t s)
{
    bool ok = s.len >= 32 && s.len <= 256;
    for (size_t i = 0; ok && i < s.len; i++) {
        ok = s.ptr[i] >= '!' && s.ptr[i] <= '~';
    }
    return ok ? NULL : "must be 32-256 printable ASCII characters";
}

/* One host name label: 1-63 code points of [A-Za-z0-9_-] or non-ASCII. */
static bool is_label(const char *p, size_t n)
{
    size_t points = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x80 && !is_alnum(c) && c != '_' && c != '-') {
            return false;
        }
        points += (c & 0xC0) != 0x80;
    }
    return points >= 1 && points <= 63;
}

/* ^(\*\.)?(L\.)*L\.?$ with L a label */
static bool is_host_glob(sg_str_t s)
{
    size_t i = sg_str_has_prefix(s, "*.") ? 2 : 0, end = s.len;
    if (end > i && s.ptr[end - 1] == '.') {
        end--;
    }
    if (end <= i) {
        return false;
    }
    while (i <= end) {
        const char *dot = memchr(s.ptr + i, '.', end - i);
        size_t n = dot != NULL ? (size_t)(dot - (s.ptr + i)) : end - i;
        if (!is_label(s.ptr + i, n)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

/* ^\[?[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]?$ (an IPv6 literal, roughly) */
static bool is_ipv6ish(sg_str_t s)
{
    size_t i = s.len != 0 && s.ptr[0] == '[' ? 1 : 0, end = s.len;
    if (end > i && s.ptr[end - 1] == ']') {
        end--;
    }
    bool colon = false;
    for (; i < end; i++) {
        char c = s.ptr[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex && c != '.' && c != ':') {
            return false;
        }
        colon = colon || c == ':';
    }
    return colon;
}

const char *sg_bootstrap_test_domain(sg_str_t s)
{
    return is_host_glob(s) || is_ipv6ish(s)
                   ? NULL
                   : "must be a host name, *. followed by one, or an IP address";
}

bool sg_bootstrap_regex_ok(sg_str_t pattern, char *msg, size_t msgsz)
{
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern.ptr, pattern.len, SG_BOOTSTRAP_PCRE2_OPTIONS,
                                   &code, &offset, NULL);
    if (re != NULL) {
        pcre2_code_free(re);
        return true;
    }
    PCRE2_UCHAR text[160];
    if (pcre2_get_error_message(code, text, sizeof(text)) < 0) {
        snprintf((char *)text, sizeof(text), "error %d", code);
    }
    snprintf(msg, msgsz, "regex does not compile at offset %zu: %s", (size_t)offset,
             (const char *)text);
    return false;
}
