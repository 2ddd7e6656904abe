/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The text decoders a domain scan follows (percent, backslash escapes, numeric
 * and a few named HTML entities, full-width forms, base64) and the UTF-8
 * helpers they need. Pure functions over byte ranges; no limits of their own
 * (the scan bounds what it feeds them).
 */
#include "core/domains_int.h"

/*
 * Decoders never produce more bytes than they read: they reserve len bytes
 * once and write directly (one call per byte into buf.c was most of their cost).
 */
static char *out_begin(sg_buf_t *out, size_t len)
{
    sg_buf_reserve(out, len);
    return out->data + out->len;
}

static void out_end(sg_buf_t *out, const char *o)
{
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
}

int sg_domains_hex_value(unsigned char c)
{
    if (sg_domains_is_digit(c)) {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void put_utf8(sg_buf_t *b, uint32_t cp)
{
    char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        out[0] = (char)(0xf0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    sg_buf_append(b, out, n);
}

/* The length of the UTF-8 sequence a lead byte starts (0: not a lead byte). */
static size_t utf8_len(unsigned char c)
{
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        return 3;
    }
    return c >= 0xf0 && c <= 0xf4 ? 4 : 0;
}

/* Decodes one UTF-8 sequence at p; returns its length (0 when ill-formed). */
size_t sg_domains_utf8_next(const unsigned char *p, size_t avail, uint32_t *cp)
{
    static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t n = utf8_len(p[0]);
    if (n == 0 || n > avail) {
        return 0;
    }
    uint32_t v = n == 1 ? p[0] : p[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3fu);
    }
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return n;
}

/* Text worth scanning: valid UTF-8 without control characters other than tab/CR/LF. */
bool sg_domains_looks_textual(const char *p, size_t len)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = sg_domains_utf8_next(u + i, len - i, &cp);
        if (n == 0 || cp == 0x7f || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r')) {
            return false;
        }
        i += n;
    }
    return len != 0;
}


bool sg_domains_decode_percent(const char *p, size_t len, sg_buf_t *out)
{
    bool changed = false;
    char *o = out_begin(out, len);
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < len && (hi = sg_domains_hex_value(p[i + 1])) >= 0 &&
            (lo = sg_domains_hex_value(p[i + 2])) >= 0 && (hi | lo) != 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
            changed = true;
        } else {
            *o++ = p[i];
        }
    }
    out_end(out, o);
    return changed;
}

/* Reads up to max hex digits at p; returns how many, value in *v. */
static size_t read_hex(const char *p, size_t avail, size_t max, uint32_t *v)
{
    size_t n = 0;
    *v = 0;
    while (n < avail && n < max && sg_domains_hex_value(p[n]) >= 0) {
        *v = *v * 16 + (uint32_t)sg_domains_hex_value(p[n]);
        n++;
    }
    return n;
}

static bool valid_cp(uint32_t cp)
{
    return cp != 0 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
}

/* \/ \\ \. \xHH \uHHHH and any escaped punctuation. */
bool sg_domains_decode_backslash(const char *p, size_t len, sg_buf_t *out)
{
    bool changed = false;
    for (size_t i = 0; i < len; i++) {
        uint32_t v;
        size_t n;
        if (p[i] != '\\' || i + 1 == len) {
            sg_buf_append_char(out, p[i]);
            continue;
        }
        char c = p[i + 1];
        if ((c == 'x' || c == 'u') &&
            (n = read_hex(p + i + 2, len - i - 2, c == 'x' ? 2 : 4, &v)) == (c == 'x' ? 2u : 4u) &&
            valid_cp(v)) {
            put_utf8(out, v);
            i += 1 + n;
        } else if (c == '/' || c == '\\' || c == '.' || c == ':' || c == '@') {
            sg_buf_append_char(out, c);
            i++;
        } else {
            sg_buf_append_char(out, p[i]);
            continue;
        }
        changed = true;
    }
    return changed;
}

bool sg_domains_decode_entities(const char *p, size_t len, sg_buf_t *out)
{
    static const struct {
        const char *name;
        char c;
    } named[] = { { "&period;", '.' },
                  { "&sol;", '/' },
                  { "&colon;", ':' },
                  { "&commat;", '@' },
                  { "&amp;", '&' } };
    bool changed = false;
    for (size_t i = 0; i < len; i++) {
        bool done = false;
        if (p[i] == '&' && i + 2 < len && p[i + 1] == '#') {
            bool hex = p[i + 2] == 'x' || p[i + 2] == 'X';
            size_t at = i + 2 + (hex ? 1 : 0), n = 0;
            uint32_t v = 0;
            while (at + n < len && n < 8 &&
                   (hex ? sg_domains_hex_value(p[at + n]) >= 0 : sg_domains_is_digit(p[at + n]))) {
                v = v * (hex ? 16 : 10) + (uint32_t)sg_domains_hex_value(p[at + n]);
                n++;
            }
            if (n > 0 && valid_cp(v)) {
                put_utf8(out, v);
                i = at + n - 1 + (at + n < len && p[at + n] == ';' ? 1 : 0);
                done = true;
            }
        }
        for (size_t k = 0; !done && p[i] == '&' && k < SG_ARRAY_LEN(named); k++) {
            size_t n = strlen(named[k].name);
            if (len - i >= n && memcmp(p + i, named[k].name, n) == 0) {
                sg_buf_append_char(out, named[k].c);
                i += n - 1;
                done = true;
            }
        }
        if (!done) {
            sg_buf_append_char(out, p[i]);
        }
        changed = changed || done;
    }
    return changed;
}

/* Full-width ASCII (U+FF01..U+FF5E) and the IDNA dots (U+3002, U+FF61, U+FE52, U+2024). */
bool sg_domains_fold_wide(const char *p, size_t len, sg_buf_t *out)
{
    const unsigned char *u = (const unsigned char *)p;
    bool changed = false;
    char *o = out_begin(out, len);
    size_t i = 0;
    while (i < len) {
        uint32_t cp = 0;
        size_t n = u[i] < 0x80 ? 0 : sg_domains_utf8_next(u + i, len - i, &cp);
        if (n == 0) {
            *o++ = p[i++];
            continue;
        }
        if (cp >= 0xff01 && cp <= 0xff5e) {
            *o++ = (char)(cp - 0xfee0);
            changed = true;
        } else if (cp == 0x3002 || cp == 0xff61 || cp == 0xfe52 || cp == 0x2024) {
            *o++ = '.';
            changed = true;
        } else {
            memcpy(o, p + i, n);
            o += n;
        }
        i += n;
    }
    out_end(out, o);
    return changed;
}

int sg_domains_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (sg_domains_is_digit(c)) {
        return c - '0' + 52;
    }
    return c == '+' || c == '-' ? 62 : c == '/' || c == '_' ? 63 : -1;
}

void sg_domains_decode_b64(const char *p, size_t len, sg_buf_t *out)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    char *o = out_begin(out, len);
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 6) | (uint32_t)sg_domains_b64_value((unsigned char)p[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (char)((acc >> bits) & 0xff);
        }
    }
    out_end(out, o);
}
