/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict JSON validation and raw-span access without trees.
 *
 * Validation is two linear passes: a byte pre-check of our own (strict UTF-8,
 * raw NUL, \u0000, lone surrogate escapes), because yajl 2.1 accepts overlong
 * and surrogate UTF-8 and turns lone surrogate escapes into "?", then yajl's
 * callback parser for the grammar, the depth bound and duplicate keys. Keys of
 * every open object are kept in a hash set, one per nesting level, under a
 * random hash key, so hostile objects cost O(n), not O(n^2).
 *
 * The span accessors are a small scanner that trusts nothing: every read is
 * bounds-checked against the slice, containers are skipped with a depth
 * counter (no recursion), and anything unexpected is SG_EPARSE. They are
 * called on the hot path of every message, on text that already passed
 * sg_json_validate().
 */
#include "base/json.h"

#include <sys/random.h>

#include <stdlib.h>
#include <time.h>

#include <yajl/yajl_parse.h>

#include "base/mem.h"

/* ---- UTF-8 ------------------------------------------------------------- */

/*
 * Length (1..4) of the well-formed UTF-8 sequence at p[0..avail), avail >= 1.
 * Returns 0 when it is ill-formed and sets *bad to the length of its maximal
 * ill-formed prefix (at least 1), which is what one U+FFFD replaces.
 */
static size_t utf8_seq(const unsigned char *p, size_t avail, size_t *bad)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        lo = c == 0xF0 ? 0x90 : 0x80; /* no overlongs */
        hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= avail || p[i] < lo || p[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    static const unsigned char lead[5] = { 0, 0x00, 0xC0, 0xE0, 0xF0 };
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--) {
        out[i] = (char)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    out[0] = (char)(lead[n] | cp);
    return n;
}

/* The value of 4 hex digits at p, or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

#define IS_HIGH_SURROGATE(cp) ((cp) >= 0xD800 && (cp) <= 0xDBFF)
#define IS_LOW_SURROGATE(cp)  ((cp) >= 0xDC00 && (cp) <= 0xDFFF)

/*
 * Decodes the escape at *pp (a backslash) into out; advances *pp. SG_EPARSE on
 * bad syntax, SG_EUTF8 on a surrogate escape that is not part of a pair.
 */
static int decode_escape(const char **pp, const char *end, char out[4], size_t *n)
{
    static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
    const char *p = *pp;
    if (end - p < 2) {
        return SG_EPARSE;
    }
    const char *s = p[1] != '\0' ? strchr(simple_in, p[1]) : NULL;
    if (s != NULL) {
        out[0] = simple_out[s - simple_in];
        *n = 1;
        *pp = p + 2;
        return SG_OK;
    }
    long hi = p[1] == 'u' && end - p >= 6 ? hex4(p + 2) : -1;
    if (hi < 0) {
        return SG_EPARSE;
    }
    p += 6;
    uint32_t cp = (uint32_t)hi;
    if (IS_LOW_SURROGATE(hi)) {
        return SG_EUTF8;
    }
    if (IS_HIGH_SURROGATE(hi)) {
        long lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
        if (!IS_LOW_SURROGATE(lo)) {
            return SG_EUTF8;
        }
        cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        p += 6;
    }
    *n = utf8_encode(cp, out);
    *pp = p;
    return SG_OK;
}

/* ---- validation: byte pre-check ---------------------------------------- */

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
/* Non-zero when one of the 8 bytes of v is zero. */
#define HAS_ZERO(v) (((v)-ONES) & ~(v)&HIGHS)

static int precheck(const char *text, size_t len, sg_error_t *err)
{
    size_t i = 0, adv, bad;
    int rc;
    while (i < len) {
        if (len - i >= 8) {
            uint64_t v;
            memcpy(&v, text + i, 8);
            if (((v & HIGHS) | HAS_ZERO(v) | HAS_ZERO(v ^ (ONES * '\\'))) == 0) {
                i += 8; /* eight plain ASCII bytes */
                continue;
            }
        }
        unsigned char c = (unsigned char)text[i];
        if (c == '\0') {
            return sg_error_set(err, SG_ENULCHAR, "NUL byte at byte %zu", i);
        }
        if (c == '\\') {
            const char *p = text + i;
            char out[4];
            rc = decode_escape(&p, text + len, out, &adv);
            if (rc == SG_EUTF8) {
                return sg_error_set(err, rc, "unpaired surrogate escape at byte %zu", i);
            }
            if (rc == SG_OK && adv == 1 && out[0] == '\0') {
                return sg_error_set(err, SG_ENULCHAR, "escaped NUL character at byte %zu", i);
            }
            i = rc == SG_OK ? (size_t)(p - text) : i + 1; /* yajl reports bad escapes */
        } else if (c < 0x80) {
            i++;
        } else {
            adv = utf8_seq((const unsigned char *)text + i, len - i, &bad);
            if (adv == 0) {
                return sg_error_set(err, SG_EUTF8, "invalid UTF-8 at byte %zu", i);
            }
            i += adv;
        }
    }
    return SG_OK;
}

/* ---- validation: duplicate keys ----------------------------------------- */

struct key_slot {
    size_t off;  /* into obj_keys.bytes */
    size_t len1; /* key length + 1; 0 for an empty slot */
    uint64_t hash;
};

/* The keys of one open object; the frame is reused by later objects at the same level. */
struct obj_keys {
    sg_buf_t bytes;         /* the key bytes back to back */
    struct key_slot *slots; /* open addressing, linear probing */
    size_t nslots;          /* a power of two, at least twice count */
    size_t count;
};

struct validator {
    size_t depth, max_depth;
    int rc; /* why a callback stopped the parse */
    struct obj_keys *objs;
    size_t nobjs, capobjs;
};

#define SMALL_TABLE 8
#define ROTL(x, b)  (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13) ^ v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17) ^ v[2];
    v[2] = ROTL(v[2], 32);
}

/*
 * SipHash-1-3 under a per-thread random key, so that nobody outside can choose
 * keys that collide (hash flooding). The key is the only state shared between
 * calls, written once per thread.
 */
static uint64_t key_hash(const unsigned char *p, size_t len)
{
    static _Thread_local uint64_t k[2];
    static _Thread_local bool seeded;
    if (!seeded) {
        if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
            k[0] = (uint64_t)(uintptr_t)&seeded ^ (uint64_t)clock();
            k[1] = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull;
        }
        seeded = true;
    }
    uint64_t v[4] = { k[0] ^ 0x736f6d6570736575ull, k[1] ^ 0x646f72616e646f6dull,
                      k[0] ^ 0x6c7967656e657261ull, k[1] ^ 0x7465646279746573ull };
    uint64_t m, last = (uint64_t)len << 56;
    size_t i = 0;
    for (; len - i >= 8; i += 8) {
        memcpy(&m, p + i, 8);
        v[3] ^= m;
        sip_round(v);
        v[0] ^= m;
    }
    for (size_t j = 0; i + j < len; j++) {
        last |= (uint64_t)p[i + j] << (8 * j);
    }
    v[3] ^= last;
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    sip_round(v);
    sip_round(v);
    sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Doubles the table (or makes the first one) and reinserts every key. */
static void grow(struct obj_keys *o)
{
    struct key_slot *old = o->slots;
    size_t nold = o->nslots, n = nold != 0 ? nold * 2 : SMALL_TABLE;
    o->slots = sg_xcalloc(n, sizeof(*o->slots));
    o->nslots = n;
    for (size_t i = 0; i < nold; i++) {
        if (old[i].len1 == 0) {
            continue;
        }
        size_t s = (size_t)old[i].hash & (n - 1);
        while (o->slots[s].len1 != 0) {
            s = (s + 1) & (n - 1);
        }
        o->slots[s] = old[i];
    }
    free(old);
}

/* Records a key of an open object; false when the object already has it. */
static bool add_key(struct obj_keys *o, const unsigned char *key, size_t len)
{
    if (2 * (o->count + 1) > o->nslots) {
        grow(o);
    }
    uint64_t h = key_hash(key, len);
    size_t mask = o->nslots - 1, s = (size_t)h & mask;
    for (; o->slots[s].len1 != 0; s = (s + 1) & mask) {
        const struct key_slot *k = &o->slots[s];
        if (k->hash == h && k->len1 == len + 1 &&
            (len == 0 || memcmp(o->bytes.data + k->off, key, len) == 0)) {
            return false;
        }
    }
    o->slots[s] = (struct key_slot){ o->bytes.len, len + 1, h };
    sg_buf_append(&o->bytes, key, len);
    o->count++;
    return true;
}

static void validator_dispose(struct validator *v)
{
    for (size_t i = 0; i < v->capobjs; i++) {
        sg_buf_dispose(&v->objs[i].bytes);
        free(v->objs[i].slots);
    }
    free(v->objs);
}

/* ---- validation: yajl callbacks ------------------------------------------ */

static int enter(struct validator *v)
{
    if (++v->depth > v->max_depth) {
        v->rc = SG_EDEPTH;
        return 0;
    }
    return 1;
}

static int on_start_map(void *ctx)
{
    struct validator *v = ctx;
    if (enter(v) == 0) {
        return 0;
    }
    if (v->nobjs == v->capobjs) {
        size_t cap = v->capobjs != 0 ? v->capobjs * 2 : 8;
        v->objs = sg_xrealloc(v->objs, cap * sizeof(*v->objs));
        memset(v->objs + v->capobjs, 0, (cap - v->capobjs) * sizeof(*v->objs));
        v->capobjs = cap;
    }
    struct obj_keys *o = &v->objs[v->nobjs++];
    sg_buf_reset(&o->bytes);
    if (o->nslots > SMALL_TABLE) {
        free(o->slots); /* a big table is not cleared for every small sibling */
        o->slots = NULL;
        o->nslots = 0;
    } else if (o->slots != NULL) {
        memset(o->slots, 0, o->nslots * sizeof(*o->slots));
    }
    o->count = 0;
    return 1;
}

static int on_end_map(void *ctx)
{
    struct validator *v = ctx;
    v->nobjs--;
    v->depth--;
    return 1;
}

static int on_start_array(void *ctx)
{
    return enter(ctx);
}

static int on_end_array(void *ctx)
{
    struct validator *v = ctx;
    v->depth--;
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    struct validator *v = ctx;
    if (len != 0 && memchr(s, '\0', len) != NULL) {
        v->rc = SG_ENULCHAR;
        return 0;
    }
    return 1;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
    struct validator *v = ctx;
    if (on_string(ctx, key, len) == 0) {
        return 0;
    }
    if (!add_key(&v->objs[v->nobjs - 1], key, len)) {
        v->rc = SG_EDUPKEY;
        return 0;
    }
    return 1;
}

static int on_number(void *ctx, const char *s, size_t len)
{
    (void)ctx; /* kept as text: big integers are never converted */
    (void)s;
    (void)len;
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

static void *ya_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return sg_xmalloc(size);
}

static void *ya_realloc(void *ctx, void *p, size_t size)
{
    (void)ctx;
    return sg_xrealloc(p, size);
}

static void ya_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static int report(yajl_handle h, const struct validator *v, size_t offset, sg_error_t *err)
{
    switch (v->rc) {
    case SG_EDEPTH:
        return sg_error_set(err, v->rc, "nesting deeper than %zu near byte %zu", v->max_depth,
                            offset);
    case SG_EDUPKEY:
        return sg_error_set(err, v->rc, "duplicate object key near byte %zu", offset);
    case SG_ENULCHAR:
        return sg_error_set(err, v->rc, "NUL character in a string near byte %zu", offset);
    default:
        break;
    }
    /* Non-verbose yajl messages are fixed texts that never include the input. */
    unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
    const char *m = msg != NULL ? (const char *)msg : "parse error";
    int code = strstr(m, "UTF8") != NULL ? SG_EUTF8 : SG_EPARSE;
    size_t n = strcspn(m, "\n");
    sg_error_set(err, code, "%.*s near byte %zu", (int)n, m, offset);
    if (msg != NULL) {
        yajl_free_error(h, msg);
    }
    return code;
}

int sg_json_validate(const char *text, size_t len, size_t max_depth, sg_error_t *err)
{
    yajl_alloc_funcs alloc = { ya_malloc, ya_realloc, ya_free, NULL };
    int rc = precheck(text, len, err);
    if (rc != SG_OK) {
        return rc;
    }
    if (sg_json_trim(sg_str_n(text, len)).len == 0) {
        return sg_error_set(err, SG_EPARSE, "empty JSON text");
    }
    struct validator v = { .max_depth = max_depth };
    yajl_handle h = yajl_alloc(&callbacks, &alloc, &v);
    SG_BUG_ON(h == NULL);
    yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
    size_t offset = yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        offset = len;
    }
    if (st != yajl_status_ok) {
        rc = report(h, &v, offset, err);
    }
    yajl_free(h);
    validator_dispose(&v);
    return rc;
}

/* ---- span scanner ------------------------------------------------------ */

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p)) {
        p++;
    }
    return p;
}

/* p at an opening quote; the byte after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    const char *from = p + 1;
    for (;;) {
        const char *q = memchr(from, '"', (size_t)(end - from));
        if (q == NULL) {
            return NULL;
        }
        size_t slashes = 0;
        while (q[-1 - (ptrdiff_t)slashes] == '\\') { /* stops at the opening quote */
            slashes++;
        }
        if (slashes % 2 == 0) {
            return q + 1;
        }
        from = q + 1;
    }
}

/* p at '[' or '{'; the byte after the matching bracket, or NULL. */
static const char *skip_container(const char *p, const char *end)
{
    size_t depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p = skip_string(p, end);
            if (p == NULL) {
                return NULL;
            }
            continue;
        }
        if (c == '[' || c == '{') {
            depth++;
        } else if ((c == ']' || c == '}') && --depth == 0) {
            return p + 1;
        }
        p++;
    }
    return NULL;
}

static bool is_scalar_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' ||
           c == 'E';
}

/* p at the first byte of a value; the byte after it, or NULL. */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end) {
        return NULL;
    }
    if (*p == '"') {
        return skip_string(p, end);
    }
    if (*p == '[' || *p == '{') {
        return skip_container(p, end);
    }
    const char *q = p;
    while (q < end && is_scalar_char(*q)) {
        q++;
    }
    return q != p ? q : NULL;
}

sg_str_t sg_json_trim(sg_str_t raw)
{
    if (raw.ptr == NULL) {
        return raw;
    }
    const char *p = raw.ptr, *end = raw.ptr + raw.len;
    p = skip_ws(p, end);
    while (end > p && is_ws(end[-1])) {
        end--;
    }
    return sg_str_n(p, (size_t)(end - p));
}

sg_json_type_t sg_json_type(sg_str_t raw)
{
    static const char firsts[] = "nft\"[{-0123456789";
    static const sg_json_type_t types[] = { SG_JSON_NULL,   SG_JSON_FALSE, SG_JSON_TRUE,
                                            SG_JSON_STRING, SG_JSON_ARRAY, SG_JSON_OBJECT };
    raw = sg_json_trim(raw);
    const char *f = raw.len != 0 && raw.ptr[0] != '\0' ? strchr(firsts, raw.ptr[0]) : NULL;
    if (f == NULL) {
        return SG_JSON_INVALID;
    }
    size_t i = (size_t)(f - firsts);
    return i < SG_ARRAY_LEN(types) ? types[i] : SG_JSON_NUMBER;
}

#define ITER_DONE SIZE_MAX

/*
 * Moves the iterator to the next element: past the opening bracket on the
 * first call, past the comma afterwards. Returns 1 with *pp at the element,
 * 0 at the closing bracket, SG_EPARSE otherwise.
 */
static int iter_step(sg_json_iter_t *it, char open, char close, const char **pp)
{
    if (it->pos == ITER_DONE) {
        return 0;
    }
    if (it->text.ptr == NULL || it->pos > it->text.len) {
        return SG_EPARSE;
    }
    const char *end = it->text.ptr + it->text.len;
    const char *p = skip_ws(it->text.ptr + it->pos, end);
    if (p == end) {
        return SG_EPARSE;
    }
    if (!it->started) {
        if (*p != open) {
            return SG_EPARSE;
        }
        it->started = true;
        p = skip_ws(p + 1, end);
        if (p < end && *p == close) {
            it->pos = ITER_DONE;
            return 0;
        }
    } else if (*p == close) {
        it->pos = ITER_DONE;
        return 0;
    } else if (*p == ',') {
        p = skip_ws(p + 1, end);
    } else {
        return SG_EPARSE;
    }
    *pp = p;
    return 1;
}

int sg_json_array_next(sg_json_iter_t *it, sg_str_t *item)
{
    const char *p = NULL;
    int rc = iter_step(it, '[', ']', &p);
    if (rc != 1) {
        return rc;
    }
    const char *q = skip_value(p, it->text.ptr + it->text.len);
    if (q == NULL) {
        return SG_EPARSE;
    }
    *item = sg_str_n(p, (size_t)(q - p));
    it->pos = (size_t)(q - it->text.ptr);
    return 1;
}

int sg_json_object_next(sg_json_iter_t *it, sg_str_t *key_raw, sg_str_t *value)
{
    const char *p = NULL;
    int rc = iter_step(it, '{', '}', &p);
    if (rc != 1) {
        return rc;
    }
    const char *end = it->text.ptr + it->text.len;
    if (p >= end || *p != '"') {
        return SG_EPARSE;
    }
    const char *k = skip_string(p, end);
    if (k == NULL) {
        return SG_EPARSE;
    }
    const char *v = skip_ws(k, end);
    if (v == end || *v != ':') {
        return SG_EPARSE;
    }
    v = skip_ws(v + 1, end);
    const char *q = skip_value(v, end);
    if (q == NULL) {
        return SG_EPARSE;
    }
    *key_raw = sg_str_n(p, (size_t)(k - p));
    *value = sg_str_n(v, (size_t)(q - v));
    it->pos = (size_t)(q - it->text.ptr);
    return 1;
}

int sg_json_object_get(sg_str_t obj, const char *key, sg_str_t *value)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(obj);
    sg_str_t k, v;
    int rc;
    while ((rc = sg_json_object_next(&it, &k, &v)) == 1) {
        if (sg_json_string_eq(k, key)) {
            *value = v; /* validated text has no second member with this key */
            return SG_OK;
        }
    }
    return rc == 0 ? SG_ENOTFOUND : SG_EPARSE;
}

/* ---- strings and numbers ------------------------------------------------- */

/* The contents between the quotes of a raw string, or false when raw is not one. */
static bool string_body(sg_str_t raw, sg_str_t *body)
{
    raw = sg_json_trim(raw);
    if (raw.len < 2 || raw.ptr[0] != '"' || raw.ptr[raw.len - 1] != '"') {
        return false;
    }
    *body = sg_str_n(raw.ptr + 1, raw.len - 2);
    return true;
}

/*
 * The next piece of a string body at *pp: a run of literal bytes (borrowed)
 * or one decoded escape (in tmp). Returns 1 with *piece set, 0 at the end,
 * a negative code on a bad escape or a raw control character.
 */
static int next_piece(const char **pp, const char *end, char tmp[4], sg_str_t *piece)
{
    const char *p = *pp, *q = p;
    if (p == end) {
        return 0;
    }
    if (*p == '\\') {
        size_t n = 0;
        int rc = decode_escape(pp, end, tmp, &n);
        *piece = sg_str_n(tmp, n);
        return rc != SG_OK ? rc : 1;
    }
    while (q < end && *q != '\\' && *q != '"' && (unsigned char)*q >= 0x20) {
        q++;
    }
    if (q == p) {
        return SG_EPARSE;
    }
    *piece = sg_str_n(p, (size_t)(q - p));
    *pp = q;
    return 1;
}

int sg_json_string_decode(sg_str_t raw, sg_buf_t *out)
{
    sg_str_t body, piece;
    char tmp[4];
    int rc;
    if (!string_body(raw, &body)) {
        return SG_EPARSE;
    }
    const char *p = body.ptr, *end = body.ptr + body.len;
    size_t start = out->len;
    while ((rc = next_piece(&p, end, tmp, &piece)) == 1) {
        sg_buf_append_str(out, piece);
    }
    if (rc != 0) {
        out->len = start; /* nothing half-decoded is left behind */
        if (out->data != NULL) {
            out->data[start] = '\0';
        }
    }
    return rc;
}

bool sg_json_string_eq(sg_str_t raw, const char *s)
{
    sg_str_t body, piece;
    char tmp[4];
    int rc;
    size_t len = strlen(s), at = 0;
    if (!string_body(raw, &body)) {
        return false;
    }
    if (memchr(body.ptr, '\\', body.len) == NULL) {
        return body.len == len && memcmp(body.ptr, s, len) == 0 && memchr(s, '"', len) == NULL;
    }
    const char *p = body.ptr, *end = body.ptr + body.len;
    while ((rc = next_piece(&p, end, tmp, &piece)) == 1) {
        if (len - at < piece.len || memcmp(s + at, piece.ptr, piece.len) != 0) {
            return false;
        }
        at += piece.len;
    }
    return rc == 0 && at == len;
}

bool sg_json_string_plain(sg_str_t raw, sg_str_t *out)
{
    sg_str_t body;
    if (!string_body(raw, &body)) {
        return false;
    }
    for (size_t i = 0; i < body.len; i++) {
        char c = body.ptr[i];
        if (c == '\\' || c == '"' || (unsigned char)c < 0x20) {
            return false;
        }
    }
    *out = body;
    return true;
}

int sg_json_int64(sg_str_t raw, int64_t *out)
{
    raw = sg_json_trim(raw);
    if (raw.len == 0) {
        return SG_EPARSE;
    }
    const char *p = raw.ptr, *end = raw.ptr + raw.len;
    bool neg = *p == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (neg) {
        p++;
    }
    if (p == end || (*p == '0' && end - p > 1)) {
        return SG_EPARSE; /* empty, "-" or a leading zero */
    }
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return SG_EPARSE; /* fractions and exponents are not integers here */
        }
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10) {
            return SG_EINVAL;
        }
        v = v * 10 + d;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return SG_OK;
}

/* ---- writer ------------------------------------------------------------ */

static void write_control(sg_buf_t *out, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    static const char *const short_forms[0x20] = {
        ['\b'] = "\\b", ['\f'] = "\\f", ['\n'] = "\\n", ['\r'] = "\\r", ['\t'] = "\\t"
    };
    if (short_forms[c] != NULL) {
        sg_buf_append(out, short_forms[c], 2);
        return;
    }
    char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF] };
    sg_buf_append(out, u, sizeof(u));
}

void sg_json_write_string(sg_buf_t *out, const char *s, size_t len)
{
    if (s == NULL) {
        s = "";
        len = 0;
    }
    const unsigned char *p = (const unsigned char *)s, *run = p;
    size_t i = 0, n, bad;
    sg_buf_reserve(out, len + 2);
    sg_buf_append_char(out, '"');
    while (i < len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        n = c < 0x80 ? 1 : utf8_seq(p + i, len - i, &bad);
        bool line_sep = n == 3 && c == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] & 0xFE) == 0xA8;
        if (n > 1 && !line_sep) {
            i += n; /* valid UTF-8 stays in the run */
            continue;
        }
        sg_buf_append(out, run, (size_t)(p + i - run));
        if (n == 0) {
            sg_buf_append(out, "\xEF\xBF\xBD", 3);
            i += bad;
        } else if (line_sep) {
            sg_buf_append(out, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
            i += 3;
        } else if (c < 0x20) {
            write_control(out, c);
            i++;
        } else {
            char e[2] = { '\\', (char)c };
            sg_buf_append(out, e, 2);
            i++;
        }
        run = p + i;
    }
    sg_buf_append(out, run, (size_t)(p + i - run));
    sg_buf_append_char(out, '"');
}
