/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Profile expansion: a validated payload becomes the stored document of
 * docs/CONFIG.md. The profile table of DESIGN §4 is written out as
 * "defaults", and every optional member is present with its value, so a
 * replica applies the snapshot without knowing what a profile is.
 *
 * Scanning is resolved per detector and per direction (arguments, results):
 * the payload's actions for that detector, else the payload's mode, else the
 * profile's action. Custom detectors take their own action, else the mode.
 *
 * Output is compact and in a fixed member order, so one payload always
 * expands to the same bytes and upstream fingerprints stay stable.
 */
#include <inttypes.h>

#include "base/json.h"
#include "core/bootstrap_int.h"

#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_APPROVAL_S 300

#define NDETECTORS 2 /* secrets, pii */
#define NDIRS      2 /* arguments, results */

static const char *const detector_names[NDETECTORS] = { "secrets", "pii" };
static const char *const dir_names[NDIRS] = { "arguments", "results" };
static const char *const scan_actions[] = { "block", "redact", "monitor", "off", NULL };

/* The profiles table of DESIGN §4, made explicit. */
struct profile {
    const char *name;
    const char *no_match;          /* deny | allow_non_destructive | allow */
    bool approve_destructive;      /* even when a rule allows them */
    const char *tool_change;       /* quarantine | flag */
    const char *redis_unreachable; /* deny | serve_last_known */
    const char *scan_mode;         /* action of detectors without one of their own */
    bool detectors[NDETECTORS];    /* enabled by default */
    const char *actions[NDETECTORS][NDIRS];
};

static const struct profile profiles[] = {
    { "strict",
      "deny",
      true,
      "quarantine",
      "deny",
      "block",
      { true, true },
      { { "block", "block" }, { "monitor", "redact" } } },
    { "standard",
      "allow_non_destructive",
      false,
      "flag",
      "deny",
      "block",
      { true, false },
      { { "block", "block" }, { "monitor", "redact" } } },
    { "permissive",
      "allow",
      false,
      "flag",
      "serve_last_known",
      "monitor",
      { true, true },
      { { "monitor", "monitor" }, { "monitor", "monitor" } } },
};

/* The effective scanning settings. */
struct scan {
    const char *mode;
    bool enabled[NDETECTORS];
    const char *actions[NDETECTORS][NDIRS];
};

/* ---- helpers ------------------------------------------------------------- */

static const struct profile *find_profile(const char *name)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(profiles); i++) {
        if (strcmp(profiles[i].name, name) == 0) {
            return &profiles[i];
        }
    }
    return NULL;
}

/* Our static spelling of a validated enum string, or NULL. */
static const char *intern(sg_str_t raw, const char *const *values)
{
    for (size_t i = 0; values[i] != NULL; i++) {
        if (sg_json_string_eq(raw, values[i])) {
            return values[i];
        }
    }
    return NULL;
}

static bool member(sg_str_t obj, const char *key, sg_str_t *v)
{
    return sg_json_type(obj) == SG_JSON_OBJECT && sg_json_object_get(obj, key, v) == SG_OK;
}

/* The member compacted, or dflt. */
static void value_or(sg_buf_t *out, sg_str_t obj, const char *key, const char *dflt)
{
    sg_str_t v;
    if (member(obj, key, &v)) {
        sg_bootstrap_append_compact(out, v);
    } else {
        sg_buf_append_cstr(out, dflt);
    }
}

/* ,"key":<the member compacted, or dflt> */
static void copy_member(sg_buf_t *out, sg_str_t obj, const char *key, const char *dflt)
{
    sg_buf_printf(out, ",\"%s\":", key);
    value_or(out, obj, key, dflt);
}

static int64_t int_member(sg_str_t obj, const char *key, int64_t dflt)
{
    sg_str_t v;
    int64_t x;
    return member(obj, key, &v) && sg_json_int64(v, &x) == SG_OK ? x : dflt;
}

static bool is_sha256_hex(const char *s)
{
    size_t n = 0;
    for (; s != NULL && s[n] != '\0'; n++) {
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) {
            return false;
        }
    }
    return n == 64;
}

/* ---- scanning ------------------------------------------------------------ */

/* Applies a validated action value (string, or {arguments, results}) to dirs. */
static void apply_actions(sg_str_t v, const char *dirs[NDIRS])
{
    const char *both = intern(v, scan_actions);
    for (size_t d = 0; d < NDIRS; d++) {
        sg_str_t one;
        if (both != NULL) {
            dirs[d] = both;
        } else if (member(v, dir_names[d], &one)) {
            dirs[d] = intern(one, scan_actions);
        }
    }
}

static void resolve_scanning(const struct profile *p, sg_str_t sc, struct scan *s)
{
    sg_str_t v = SG_STR_NULL, item, acts;
    const char *mode = member(sc, "mode", &v) ? intern(v, scan_actions) : NULL;
    s->mode = mode != NULL ? mode : p->scan_mode;
    bool listed = member(sc, "detectors", &v);
    for (size_t d = 0; d < NDETECTORS; d++) {
        s->enabled[d] = listed ? false : p->detectors[d];
        for (size_t k = 0; k < NDIRS; k++) {
            s->actions[d][k] = mode != NULL ? mode : p->actions[d][k];
        }
        if (member(sc, "actions", &acts) && member(acts, detector_names[d], &item)) {
            apply_actions(item, s->actions[d]);
        }
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    while (listed && sg_json_array_next(&it, &item) == 1) {
        for (size_t d = 0; d < NDETECTORS; d++) {
            s->enabled[d] = s->enabled[d] || sg_json_string_eq(item, detector_names[d]);
        }
    }
}

static void write_dirs(sg_buf_t *out, const char *const dirs[NDIRS])
{
    sg_buf_printf(out, "{\"%s\":\"%s\",\"%s\":\"%s\"}", dir_names[0], dirs[0], dir_names[1],
                  dirs[1]);
}

/* {"mode":..,"detectors":[..],"actions":{..}} without the closing brace. */
static void write_scan_head(sg_buf_t *out, const struct scan *s)
{
    sg_buf_printf(out, "{\"mode\":\"%s\",\"detectors\":[", s->mode);
    for (size_t d = 0, n = 0; d < NDETECTORS; d++) {
        if (s->enabled[d]) {
            sg_buf_printf(out, "%s\"%s\"", n++ != 0 ? "," : "", detector_names[d]);
        }
    }
    sg_buf_append_cstr(out, "],\"actions\":{");
    for (size_t d = 0, n = 0; d < NDETECTORS; d++) {
        if (s->enabled[d]) {
            sg_buf_printf(out, "%s\"%s\":", n++ != 0 ? "," : "", detector_names[d]);
            write_dirs(out, s->actions[d]);
        }
    }
    sg_buf_append_char(out, '}');
}

static void write_custom(sg_buf_t *out, sg_str_t sc, const char *mode)
{
    sg_str_t list, item, v = SG_STR_LIT("null");
    sg_buf_append_cstr(out, ",\"custom\":[");
    if (member(sc, "custom", &list)) {
        sg_json_iter_t it = SG_JSON_ITER_INIT(list);
        for (size_t n = 0; sg_json_array_next(&it, &item) == 1; n++) {
            const char *dirs[NDIRS] = { mode, mode };
            if (member(item, "action", &v)) {
                apply_actions(v, dirs);
            }
            sg_buf_append_cstr(out, n != 0 ? ",{\"name\":" : "{\"name\":");
            (void)member(item, "name", &v);
            sg_bootstrap_append_compact(out, v);
            copy_member(out, item, "regex", "\"\"");
            sg_buf_append_cstr(out, ",\"action\":");
            write_dirs(out, dirs);
            sg_buf_append_char(out, '}');
        }
    }
    sg_buf_append_char(out, ']');
}

static void write_scanning(sg_buf_t *out, const struct profile *p, sg_str_t root)
{
    sg_str_t sc = SG_STR_LIT("{}");
    struct scan s;
    (void)member(root, "scanning", &sc);
    resolve_scanning(p, sc, &s);
    sg_buf_append_cstr(out, ",\"scanning\":");
    write_scan_head(out, &s);
    write_custom(out, sc, s.mode);
    sg_buf_append_char(out, '}');
}

static void write_defaults(sg_buf_t *out, const struct profile *p)
{
    struct scan s = { .mode = p->scan_mode };
    memcpy(s.enabled, p->detectors, sizeof(s.enabled));
    memcpy(s.actions, p->actions, sizeof(s.actions));
    sg_buf_printf(out,
                  ",\"defaults\":{\"no_match\":\"%s\",\"approve_destructive\":%s,\"scanning\":",
                  p->no_match, p->approve_destructive ? "true" : "false");
    write_scan_head(out, &s);
    sg_buf_printf(out, "},\"tool_change\":\"%s\",\"redis_unreachable\":\"%s\"}", p->tool_change,
                  p->redis_unreachable);
}

/* ---- identities and upstreams -------------------------------------------- */

static void write_identities(sg_buf_t *out, sg_str_t root, const char *const *hashes)
{
    sg_str_t list, item, v = SG_STR_LIT("null");
    sg_buf_append_cstr(out, ",\"identities\":[");
    if (member(root, "identities", &list)) {
        sg_json_iter_t it = SG_JSON_ITER_INIT(list);
        for (size_t i = 0; sg_json_array_next(&it, &item) == 1; i++) {
            sg_buf_append_cstr(out, i != 0 ? ",{\"name\":" : "{\"name\":");
            (void)member(item, "name", &v);
            sg_bootstrap_append_compact(out, v);
            copy_member(out, item, "roles", "[]");
            sg_buf_printf(out, ",\"keys\":[{\"sha256\":\"%s\",\"expires_ms\":0}]}", hashes[i]);
        }
    }
    sg_buf_append_char(out, ']');
}

static void write_upstream(sg_buf_t *out, sg_str_t u)
{
    sg_str_t name = SG_STR_LIT("null"), v;
    (void)member(u, "name", &name);
    sg_buf_append_cstr(out, "{\"name\":");
    sg_bootstrap_append_compact(out, name);
    sg_buf_append_cstr(out, ",\"prefix\":");
    sg_bootstrap_append_compact(out, member(u, "prefix", &v) ? v : name);
    if (member(u, "command", &v)) {
        copy_member(out, u, "command", "\"\"");
        copy_member(out, u, "args", "[]");
        copy_member(out, u, "env", "{}");
        if (member(u, "cwd", &v) && sg_json_type(v) == SG_JSON_STRING) {
            copy_member(out, u, "cwd", "");
        }
    } else {
        copy_member(out, u, "url", "\"\"");
        copy_member(out, u, "headers", "{}");
    }
    sg_buf_printf(out, ",\"timeout_ms\":%" PRId64 "}",
                  int_member(u, "timeout_ms", DEFAULT_TIMEOUT_MS));
}

static void write_upstreams(sg_buf_t *out, sg_str_t root)
{
    sg_str_t list, item;
    sg_buf_append_cstr(out, ",\"upstreams\":[");
    if (member(root, "upstreams", &list)) {
        sg_json_iter_t it = SG_JSON_ITER_INIT(list);
        for (size_t i = 0; sg_json_array_next(&it, &item) == 1; i++) {
            sg_buf_append_cstr(out, i != 0 ? "," : "");
            write_upstream(out, item);
        }
    }
    sg_buf_append_char(out, ']');
}

/* ---- the document -------------------------------------------------------- */

static void write_tail(sg_buf_t *out, sg_str_t root)
{
    sg_str_t approvals = SG_STR_LIT("{}"), audit = SG_STR_LIT("{}");
    (void)member(root, "approvals", &approvals);
    (void)member(root, "audit", &audit);
    copy_member(out, root, "policies", "[]");
    copy_member(out, root, "classes", "{}");
    sg_buf_printf(out, ",\"approvals\":{\"timeout_s\":%" PRId64 "}",
                  int_member(approvals, "timeout_s", DEFAULT_APPROVAL_S));
    copy_member(out, root, "rate_limits", "[]");
    sg_buf_append_cstr(out, ",\"audit\":{\"mode\":");
    value_or(out, audit, "mode", "\"async\"");
    sg_buf_append_cstr(out, ",\"on_unavailable\":");
    value_or(out, audit, "on_unavailable", "\"serve\"");
    sg_buf_append_char(out, '}');
    copy_member(out, root, "allowed_origins", "[]");
}

int sg_bootstrap_expand(const sg_bootstrap_t *b, int64_t version, const char *const *api_key_hashes,
                        sg_buf_t *stored_out)
{
    for (size_t i = 0; i < b->nidentities; i++) {
        if (api_key_hashes == NULL || !is_sha256_hex(api_key_hashes[i])) {
            return SG_EINVAL;
        }
    }
    const struct profile *p = find_profile(b->profile);
    SG_BUG_ON(p == NULL);
    sg_str_t root = sg_json_trim(sg_str_n(b->text, b->len)), v = SG_STR_LIT("null");
    sg_buf_append_cstr(stored_out, "{\"tenant\":");
    (void)member(root, "tenant", &v);
    sg_bootstrap_append_compact(stored_out, v);
    sg_buf_printf(stored_out, ",\"version\":%" PRId64 ",\"profile\":\"%s\"", version, p->name);
    write_defaults(stored_out, p);
    write_identities(stored_out, root, api_key_hashes);
    write_upstreams(stored_out, root);
    write_scanning(stored_out, p, root);
    write_tail(stored_out, root);
    sg_buf_append_char(stored_out, '}');
    return SG_OK;
}
