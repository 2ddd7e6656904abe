/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON on untrusted input, without building trees.
 *
 * sg_json_validate() runs yajl's callback (SAX) parser over a whole text once
 * and enforces our rules: exactly one value, no comments, valid UTF-8, no
 * \u0000 in any string or key, no duplicate keys in any object, nesting depth
 * bounded. Everything else here works on *raw spans* of a text that passed
 * validation: values are handed around as the bytes they occupy in the input
 * (sg_str_t slices that borrow the input), which lets the gateway forward
 * what it received byte for byte and splice in only what it rewrites.
 *
 * The span accessors never read outside the slice they are given and return
 * SG_EPARSE on malformed input instead of misbehaving, but their answers are
 * only meaningful for validated text.
 */
#ifndef SG_BASE_JSON_H
#define SG_BASE_JSON_H

#include "base/buf.h"
#include "base/err.h"
#include "base/sg.h"

#define SG_JSON_MAX_DEPTH 64

typedef enum sg_json_type {
    SG_JSON_INVALID = 0,
    SG_JSON_NULL,
    SG_JSON_FALSE,
    SG_JSON_TRUE,
    SG_JSON_NUMBER,
    SG_JSON_STRING,
    SG_JSON_ARRAY,
    SG_JSON_OBJECT,
} sg_json_type_t;

/*
 * Validates text[0..len) as one strict JSON value (surrounding whitespace allowed).
 * Returns SG_OK, or SG_EPARSE (syntax, trailing data, comments, empty text),
 * SG_EUTF8 (ill-formed UTF-8: overlongs, UTF-8 encoded surrogates, above U+10FFFF,
 * truncated; also \u escapes of a surrogate that is not part of a pair),
 * SG_ENULCHAR (a raw NUL byte anywhere, or \u0000 in a string or key), SG_EDUPKEY
 * (two keys of one object equal after unescaping), SG_EDEPTH (more than max_depth
 * nested arrays/objects), with a human message in err (may be NULL) that never
 * quotes the input (it may give a byte offset). Numbers are never converted, so
 * integers of any size are accepted. Linear time in len.
 */
int sg_json_validate(const char *text, size_t len, size_t max_depth, sg_error_t *err) SG_MUSTCHECK;

/* The type of a raw value by its first non-space byte. */
sg_json_type_t sg_json_type(sg_str_t raw);

/* raw with leading and trailing JSON whitespace removed. */
sg_str_t sg_json_trim(sg_str_t raw);

/*
 * The raw value of member `key` of the object `obj` (top level only; keys are
 * compared after unescaping). SG_OK and *value set, SG_ENOTFOUND when absent,
 * SG_EPARSE when obj is not an object.
 */
int sg_json_object_get(sg_str_t obj, const char *key, sg_str_t *value) SG_MUSTCHECK;

/*
 * Iterates the members of an object. Start with it = SG_JSON_ITER_INIT(obj).
 * Returns 1 with *key_raw (the key's raw text, quotes included) and *value set
 * (exact spans, no surrounding whitespace), 0 at the end (and on every later
 * call), SG_EPARSE on malformed input or when obj is not an object.
 */
typedef struct sg_json_iter {
    sg_str_t text;
    size_t pos;
    bool started;
} sg_json_iter_t;
#define SG_JSON_ITER_INIT(raw) ((sg_json_iter_t){ (raw), 0, false })
int sg_json_object_next(sg_json_iter_t *it, sg_str_t *key_raw, sg_str_t *value) SG_MUSTCHECK;
/* Same for arrays: returns 1 with *item set, 0 at the end, SG_EPARSE otherwise. */
int sg_json_array_next(sg_json_iter_t *it, sg_str_t *item) SG_MUSTCHECK;

/*
 * Decodes a raw JSON string ("..." with escapes) and appends the UTF-8 bytes to
 * out. SG_EPARSE when raw is not a string; surrogate pairs are combined, a lone
 * surrogate is an error (SG_EUTF8). On error out is left as it was.
 */
int sg_json_string_decode(sg_str_t raw, sg_buf_t *out) SG_MUSTCHECK;
/*
 * True when raw is a JSON string whose decoded value equals s. Cheap when raw
 * has no escapes.
 */
bool sg_json_string_eq(sg_str_t raw, const char *s);
/*
 * If raw is a string without escapes, sets *out to its contents (borrowed
 * from raw) and returns true. Otherwise returns false.
 */
bool sg_json_string_plain(sg_str_t raw, sg_str_t *out);

/*
 * Parses a raw JSON number written as an integer (no fraction, no exponent).
 * SG_EPARSE when raw is not such a number, SG_EINVAL when it is outside int64.
 */
int sg_json_int64(sg_str_t raw, int64_t *out) SG_MUSTCHECK;

/*
 * Appends s as a JSON string (quotes included). Escapes ", \, control
 * characters, U+2028 and U+2029; invalid UTF-8 sequences are replaced with
 * U+FFFD, so the output is always valid JSON and valid UTF-8.
 */
void sg_json_write_string(sg_buf_t *out, const char *s, size_t len);
static inline void sg_json_write_cstr(sg_buf_t *out, const char *s)
{
    sg_json_write_string(out, s, strlen(s));
}

#endif
