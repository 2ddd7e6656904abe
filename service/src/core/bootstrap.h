/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bootstrap payload of one tenant (DESIGN §4): validation, profile
 * expansion into the stored document (docs/CONFIG.md) and redaction.
 *
 * Validation is our own code for exactly this payload (Debian has no JSON
 * Schema library for C): it enforces schema/bootstrap.schema.json plus the
 * checks a schema cannot express (body size, strict JSON, unique names and
 * keys, PCRE2 regexes that compile, prefixes that cannot collide, references
 * to declared upstreams and identities) and, last, compiles the expanded
 * document the way a replica does (core/tenant, core/policy), so a payload
 * that passes is never refused by a replica. It reports every problem at once,
 * each as a JSON pointer into the payload and a message that never quotes a
 * value from the payload. The same vectors (tests/vectors/bootstrap) run
 * through this code and through the schema with a real validator.
 *
 * Called by the control plane's bootstrap route; pure: no I/O, no clock, no
 * randomness (API keys are generated and hashed by the caller).
 */
#ifndef SG_CORE_BOOTSTRAP_H
#define SG_CORE_BOOTSTRAP_H

#include "base/buf.h"
#include "base/err.h"
#include "base/sg.h"

#define SG_BOOTSTRAP_MAX_BODY  ((size_t)1 << 20) /* larger bodies are refused unparsed */
#define SG_BOOTSTRAP_MAX_DEPTH 16                /* JSON nesting bound; a valid payload needs 6 */
#define SG_PROBLEMS_MAX        512               /* further problems are counted, not listed */

/* ---- problems --------------------------------------------------------- */

typedef struct sg_problem {
    char *pointer; /* RFC 6901 pointer into the payload; "" = the whole body */
    char *error;   /* human message; never quotes payload values */
} sg_problem_t;

/* Every problem found in one payload, in document order (owned, heap). */
typedef struct sg_problems {
    sg_problem_t *items;
    size_t count;
    size_t dropped; /* problems past SG_PROBLEMS_MAX, not listed */
} sg_problems_t;

#define SG_PROBLEMS_INIT ((sg_problems_t){ NULL, 0, 0 })

/* Frees every item; p is then empty and reusable. */
void sg_problems_dispose(sg_problems_t *p);
/* Appends one problem (pointer copied; NULL means ""). Past SG_PROBLEMS_MAX only counts it. */
void sg_problems_add(sg_problems_t *p, const char *pointer, const char *fmt, ...) SG_PRINTF(3, 4);
/* True when some problem has exactly this pointer. */
bool sg_problems_has(const sg_problems_t *p, const char *pointer);
/*
 * Appends [{"pointer":"...","error":"..."},...] to out; when problems were
 * dropped, a last item with pointer "" says how many.
 */
void sg_problems_write_json(const sg_problems_t *p, sg_buf_t *out);

/* ---- validation ------------------------------------------------------- */

/* A validated payload (opaque, owned by the caller). */
typedef struct sg_bootstrap sg_bootstrap_t;

/*
 * Validates json[0..len) (need not be NUL-terminated; it is copied, not kept)
 * and appends every problem to problems (which must be initialised; existing
 * items are kept). Returns:
 *   SG_OK       valid; *out is a new sg_bootstrap_t (free with sg_bootstrap_free)
 *   SG_ETOOBIG  len > SG_BOOTSTRAP_MAX_BODY; nothing parsed, one problem at ""
 *   SG_EPARSE, SG_EUTF8, SG_ENULCHAR, SG_EDUPKEY, SG_EDEPTH
 *               not strict JSON (sg_json_validate); one problem at ""
 *   SG_EPARAMS  well-formed JSON that breaks the schema or a rule; >= 1 problem
 * On every error *out is NULL. DESIGN §4 answers all of them with 400 and the
 * problems (sg_problems_write_json).
 */
int sg_bootstrap_validate(const char *json, size_t len, sg_bootstrap_t **out,
                          sg_problems_t *problems) SG_MUSTCHECK;
/* NULL is a no-op. */
void sg_bootstrap_free(sg_bootstrap_t *b);

/* Accessors; strings are borrowed until sg_bootstrap_free. */
const char *sg_bootstrap_tenant(const sg_bootstrap_t *b);
const char *sg_bootstrap_profile(const sg_bootstrap_t *b); /* strict|standard|permissive */
size_t sg_bootstrap_identity_count(const sg_bootstrap_t *b);
/* Identity i (payload order), i < count. */
const char *sg_bootstrap_identity_name(const sg_bootstrap_t *b, size_t i);
/* The key the caller supplied for identity i, or NULL: generate one. */
const char *sg_bootstrap_identity_api_key(const sg_bootstrap_t *b, size_t i);

/* ---- expansion -------------------------------------------------------- */

/*
 * Appends the stored document (docs/CONFIG.md) for b at `version` to
 * stored_out: the payload with its profile made explicit in "defaults",
 * every optional member present with its default, compact, members in a
 * fixed order, so one payload always expands to the same bytes (upstream
 * fingerprints stay stable). api_key_hashes has sg_bootstrap_identity_count(b)
 * entries, each the SHA-256 of that identity's key as 64 hex digits; the
 * keys themselves are never written. Returns SG_OK, or SG_EINVAL (nothing
 * appended) when a hash is NULL or not 64 hex digits.
 */
int sg_bootstrap_expand(const sg_bootstrap_t *b, int64_t version, const char *const *api_key_hashes,
                        sg_buf_t *stored_out) SG_MUSTCHECK;

/* ---- redaction -------------------------------------------------------- */

/*
 * Appends to out a compact copy of json[0..len) (a payload or a stored
 * document, valid or not against the schema) in which the value of every
 * member of every "env" and "headers" object, and every "api_key" value, at
 * any depth, is "[redacted]" (an "env" or "headers" that is not an object is
 * replaced whole). For admin_actions rows and read APIs. Returns SG_OK, or
 * the sg_json_validate() code when json is not strict JSON (nothing appended:
 * such a body cannot be shown at all).
 */
int sg_bootstrap_redact(const char *json, size_t len, sg_buf_t *out) SG_MUSTCHECK;

#endif
