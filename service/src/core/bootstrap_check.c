/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The schema walk: schema/bootstrap.schema.json written down as a table of
 * specs (one per schema node) and checked by one small recursive walker.
 * This is not a JSON Schema engine: it knows the handful of node kinds this
 * payload uses, and a "choice" picks its branch by JSON type, which is what
 * every oneOf in the schema amounts to. The two rules the schema states with
 * oneOf/anyOf over members (command xor url; an argument test needs a test)
 * are object-level check functions.
 *
 * Every problem is reported and the walk goes on; the walk is bounded by the
 * nesting of the spec table, not by the input (which sg_json_validate has
 * bounded and checked before). Integers must be written as plain integers
 * and regexes must compile: those two go beyond the schema.
 */
#include <stdio.h>
#include <stdlib.h>

#include <pcre2.h>

#include "base/json.h"
#include "base/mem.h"
#include "core/bootstrap_int.h"
#include "core/tenant.h"

/* ---- specs --------------------------------------------------------------- */

enum sg_spec_kind {
    SG_SPEC_STRING = 0,
    SG_SPEC_INT,
    SG_SPEC_NUMBER,
    SG_SPEC_BOOL,
    SG_SPEC_NULL,
    SG_SPEC_ENUM,
    SG_SPEC_ARRAY,
    SG_SPEC_OBJECT,
    SG_SPEC_MAP, /* an object whose members are all alike */
    SG_SPEC_CHOICE,
};

struct member;

struct spec {
    enum sg_spec_kind kind;
    int64_t min, max;             /* string length in code points, integer range, item
                                     or member count; max 0 = no bound (except integers) */
    const char *what;             /* CHOICE and ENUM: what is expected, for messages */
    const char *const *values;    /* ENUM, NULL-terminated */
    const struct spec *items;     /* ARRAY items, MAP values */
    const struct spec *keys;      /* MAP member names */
    const struct member *members; /* OBJECT */
    size_t nmembers;
    const struct spec *const *choices; /* CHOICE, tried by JSON type */
    size_t nchoices;
    const char *(*test)(sg_str_t s);                   /* STRING: the pattern (NULL: matches) */
    bool regex;                                        /* STRING: must compile with PCRE2 */
    void (*check)(sg_bootstrap_walk_t *w, sg_str_t v); /* OBJECT: rules across members */
    bool unique;                                       /* ARRAY: no two equal strings */
};

struct member {
    const char *name;
    const struct spec *spec;
    bool required;
};

#define MEMBERS(a) .members = (a), .nmembers = SG_ARRAY_LEN(a)
#define CHOICES(a) .choices = (a), .nchoices = SG_ARRAY_LEN(a)

/* ---- object rules -------------------------------------------------------- */

static bool has_member(sg_str_t obj, const char *key)
{
    sg_str_t v;
    return sg_json_object_get(obj, key, &v) == SG_OK;
}

/* Reports each of keys present in obj as belonging to the other kind. */
static void report_foreign(sg_bootstrap_walk_t *w, sg_str_t obj, const char *const *keys,
                           const char *why)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (has_member(obj, keys[i])) {
            size_t mark = sg_bootstrap_push_key(w, keys[i], strlen(keys[i]));
            sg_bootstrap_report(w, "%s", why);
            sg_bootstrap_pop(w, mark);
        }
    }
}

static void check_upstream_kind(sg_bootstrap_walk_t *w, sg_str_t v)
{
    static const char *const stdio_only[] = { "args", "env", "cwd", NULL };
    static const char *const http_only[] = { "headers", NULL };
    bool cmd = has_member(v, "command"), url = has_member(v, "url");
    if (cmd && url) {
        sg_bootstrap_report(w, "must have exactly one of command (stdio) and url (HTTP), not both");
    } else if (!cmd && !url) {
        sg_bootstrap_report(w, "must have command (stdio) or url (HTTP)");
    } else if (cmd) {
        report_foreign(w, v, http_only, "only for url (HTTP) upstreams");
    } else {
        report_foreign(w, v, stdio_only, "only for command (stdio) upstreams");
    }
}

static void check_arg_test(sg_bootstrap_walk_t *w, sg_str_t v)
{
    sg_str_t type, equals;
    if (!has_member(v, "regex") && !has_member(v, "equals") && !has_member(v, "prefix") &&
        !has_member(v, "max_len")) {
        sg_bootstrap_report(w, "needs at least one of regex, equals, prefix, max_len");
    }
    if (sg_json_object_get(v, "type", &type) == SG_OK && sg_json_string_eq(type, "path") &&
        sg_json_object_get(v, "equals", &equals) == SG_OK &&
        sg_json_type(equals) != SG_JSON_STRING) {
        size_t mark = sg_bootstrap_push_key(w, "equals", 6);
        sg_bootstrap_report(w, "must be a string when type is path");
        sg_bootstrap_pop(w, mark);
    }
}

/* ---- the schema as specs ------------------------------------------------- */

static const char *const profiles[] = { "strict", "standard", "permissive", NULL };
static const char *const classes[] = { "read", "write", "destructive", NULL };
static const char *const actions[] = { "allow", "deny", "approve", NULL };
static const char *const rule_modes[] = { "enforce", "shadow", NULL };
static const char *const arg_types[] = { "path", "string", NULL };
static const char *const scan_actions[] = { "block", "redact", "monitor", "off", NULL };
static const char *const detectors[] = { "secrets", "pii", NULL };
static const char *const audit_modes[] = { "async", "sync", NULL };
static const char *const on_unavailable[] = { "serve", "deny", NULL };
static const char *const rate_scopes[] = { "identity", "tenant", NULL };

#define ENUM(v)                             \
    {                                       \
        .kind = SG_SPEC_ENUM, .values = (v) \
    }
#define STR(lo, hi, fn)                                                \
    {                                                                  \
        .kind = SG_SPEC_STRING, .min = (lo), .max = (hi), .test = (fn) \
    }
#define INT(lo, hi)                                   \
    {                                                 \
        .kind = SG_SPEC_INT, .min = (lo), .max = (hi) \
    }

static const struct spec s_name = STR(0, 0, sg_bootstrap_test_name);
static const struct spec s_names = {
    .kind = SG_SPEC_ARRAY, .min = 1, .max = 1024, .items = &s_name, .unique = true
};
static const struct spec s_tool_name = STR(1, 256, NULL);
static const struct spec s_class = ENUM(classes);
static const struct spec s_regex = { .kind = SG_SPEC_STRING, .min = 1, .max = 4096, .regex = true };

/* upstreams */
static const struct spec s_prefix = STR(0, 0, sg_bootstrap_test_prefix);
static const struct spec s_command = STR(1, 4096, NULL);
static const struct spec s_arg = STR(0, 4096, NULL);
static const struct spec s_args = { .kind = SG_SPEC_ARRAY, .max = 1024, .items = &s_arg };
static const struct spec s_env_name = STR(0, 0, sg_bootstrap_test_env_name);
static const struct spec s_env_value = STR(0, 32768, NULL);
static const struct spec s_env = {
    .kind = SG_SPEC_MAP, .max = 1024, .keys = &s_env_name, .items = &s_env_value
};
static const struct spec s_null = { .kind = SG_SPEC_NULL };
static const struct spec s_cwd_path = STR(1, 4096, NULL);
static const struct spec *const cwd_choices[] = { &s_null, &s_cwd_path };
static const struct spec s_cwd = { .kind = SG_SPEC_CHOICE,
                                   .what = "a string or null",
                                   CHOICES(cwd_choices) };
static const struct spec s_url = STR(0, 2048, sg_bootstrap_test_url);
static const struct spec s_header_name = STR(0, 0, sg_bootstrap_test_header_name);
static const struct spec s_header_value = STR(0, 8192, sg_bootstrap_test_header_value);
static const struct spec s_headers = {
    .kind = SG_SPEC_MAP, .max = 1024, .keys = &s_header_name, .items = &s_header_value
};
static const struct spec s_timeout_ms = INT(100, 3600000);
static const struct member upstream_members[] = {
    { "name", &s_name, true },
    { "prefix", &s_prefix, false },
    { "command", &s_command, false },
    { "args", &s_args, false },
    { "env", &s_env, false },
    { "cwd", &s_cwd, false },
    { "url", &s_url, false },
    { "headers", &s_headers, false },
    { "timeout_ms", &s_timeout_ms, false },
};
static const struct spec s_upstream = { .kind = SG_SPEC_OBJECT,
                                        MEMBERS(upstream_members),
                                        .check = check_upstream_kind };
static const struct spec s_upstreams = { .kind = SG_SPEC_ARRAY, .max = 256, .items = &s_upstream };

/* identities */
static const struct spec s_roles = {
    .kind = SG_SPEC_ARRAY, .max = 1024, .items = &s_name, .unique = true
};
static const struct spec s_api_key = STR(0, 0, sg_bootstrap_test_api_key);
static const struct member identity_members[] = {
    { "name", &s_name, true },
    { "roles", &s_roles, false },
    { "api_key", &s_api_key, false },
};
static const struct spec s_identity = { .kind = SG_SPEC_OBJECT, MEMBERS(identity_members) };
static const struct spec s_identities = { .kind = SG_SPEC_ARRAY,
                                          .max = 1024,
                                          .items = &s_identity };

/* match */
static const struct spec s_tool_list = {
    .kind = SG_SPEC_ARRAY, .min = 1, .max = 1024, .items = &s_tool_name, .unique = true
};
static const struct spec *const tool_choices[] = { &s_tool_name, &s_tool_list };
static const struct spec s_tool = { .kind = SG_SPEC_CHOICE,
                                    .what = "a string or an array of strings",
                                    CHOICES(tool_choices) };
static const struct spec *const upstream_choices[] = { &s_name, &s_names };
static const struct spec s_upstream_ref = { .kind = SG_SPEC_CHOICE,
                                            .what = "a name or an array of names",
                                            CHOICES(upstream_choices) };
static const struct spec s_method = STR(0, 0, sg_bootstrap_test_method);
static const struct spec s_method_list = {
    .kind = SG_SPEC_ARRAY, .min = 1, .max = 1024, .items = &s_method, .unique = true
};
static const struct spec *const method_choices[] = { &s_method, &s_method_list };
static const struct spec s_method_ref = { .kind = SG_SPEC_CHOICE,
                                          .what = "a method or an array of methods",
                                          CHOICES(method_choices) };
static const struct spec s_class_list = {
    .kind = SG_SPEC_ARRAY, .min = 1, .max = 3, .items = &s_class, .unique = true
};
static const struct spec *const class_choices[] = { &s_class, &s_class_list };
static const struct spec s_class_ref = { .kind = SG_SPEC_CHOICE,
                                         .what = "a class or an array of classes",
                                         CHOICES(class_choices) };
static const struct spec s_equals_string = STR(0, 4096, NULL);
static const struct spec s_number = { .kind = SG_SPEC_NUMBER };
static const struct spec s_bool = { .kind = SG_SPEC_BOOL };
static const struct spec *const equals_choices[] = { &s_equals_string, &s_number, &s_bool,
                                                     &s_null };
static const struct spec s_equals = { .kind = SG_SPEC_CHOICE,
                                      .what = "a string, number, boolean or null",
                                      CHOICES(equals_choices) };
static const struct spec s_arg_prefix = STR(1, 4096, NULL);
static const struct spec s_max_len = INT(0, 1073741824);
static const struct spec s_arg_type = ENUM(arg_types);
static const struct member arg_test_members[] = {
    { "regex", &s_regex, false },       { "equals", &s_equals, false },
    { "prefix", &s_arg_prefix, false }, { "max_len", &s_max_len, false },
    { "type", &s_arg_type, false },
};
static const struct spec s_arg_test = { .kind = SG_SPEC_OBJECT,
                                        MEMBERS(arg_test_members),
                                        .check = check_arg_test };
static const struct spec s_arg_path = STR(0, 256, sg_bootstrap_test_arg_path);
static const struct spec s_arg_tests = {
    .kind = SG_SPEC_MAP, .min = 1, .max = 256, .keys = &s_arg_path, .items = &s_arg_test
};
static const struct spec s_domain = STR(0, 253, sg_bootstrap_test_domain);
static const struct spec s_domains = {
    .kind = SG_SPEC_ARRAY, .min = 1, .max = 1024, .items = &s_domain, .unique = true
};
static const struct spec s_regex_list = {
    .kind = SG_SPEC_ARRAY, .min = 1, .max = 1024, .items = &s_regex, .unique = true
};
static const struct spec *const regex_choices[] = { &s_regex, &s_regex_list };
static const struct spec s_tool_regex = { .kind = SG_SPEC_CHOICE,
                                          .what = "a regex or an array of regexes",
                                          CHOICES(regex_choices) };
static const struct member match_members[] = {
    { "tool", &s_tool, false },
    { "tool_regex", &s_tool_regex, false },
    { "upstream", &s_upstream_ref, false },
    { "method", &s_method_ref, false },
    { "roles", &s_names, false },
    { "identities", &s_names, false },
    { "class", &s_class_ref, false },
    { "args", &s_arg_tests, false },
    { "args_domain", &s_domains, false },
};
static const struct spec s_match = { .kind = SG_SPEC_OBJECT, MEMBERS(match_members) };

/* policies, classes */
static const struct spec s_priority = INT(0, 1000000);
static const struct spec s_reason = STR(0, 1024, NULL);
static const struct spec s_rule_name = STR(0, 0, sg_bootstrap_test_rule_name);
static const struct spec s_action = ENUM(actions);
static const struct spec s_rule_mode = ENUM(rule_modes);
static const struct member rule_members[] = {
    { "name", &s_rule_name, true },  { "priority", &s_priority, true },
    { "action", &s_action, true },   { "match", &s_match, true },
    { "reason", &s_reason, false },  { "description", &s_reason, false },
    { "mode", &s_rule_mode, false },
};
static const struct spec s_rule = { .kind = SG_SPEC_OBJECT, MEMBERS(rule_members) };
static const struct spec s_rules = { .kind = SG_SPEC_ARRAY, .max = 10000, .items = &s_rule };
static const struct spec s_classes = {
    .kind = SG_SPEC_MAP, .max = 10000, .keys = &s_tool_name, .items = &s_class
};

/* scanning */
static const struct spec s_scan_action = ENUM(scan_actions);
static const struct member scan_dir_members[] = {
    { "arguments", &s_scan_action, false },
    { "results", &s_scan_action, false },
};
static const struct spec s_scan_dirs = { .kind = SG_SPEC_OBJECT,
                                         .min = 1,
                                         MEMBERS(scan_dir_members) };
static const struct spec *const scan_choices[] = { &s_scan_action, &s_scan_dirs };
static const struct spec s_scan_actions = { .kind = SG_SPEC_CHOICE,
                                            .what = "an action or an object {arguments, results}",
                                            CHOICES(scan_choices) };
static const struct spec s_detector = ENUM(detectors);
static const struct spec s_detectors = {
    .kind = SG_SPEC_ARRAY, .max = 2, .items = &s_detector, .unique = true
};
static const struct member scan_action_members[] = {
    { "secrets", &s_scan_actions, false },
    { "pii", &s_scan_actions, false },
};
static const struct spec s_scan_action_map = { .kind = SG_SPEC_OBJECT,
                                               MEMBERS(scan_action_members) };
static const struct member custom_members[] = {
    { "name", &s_name, true },
    { "regex", &s_regex, true },
    { "action", &s_scan_actions, false },
};
static const struct spec s_custom = { .kind = SG_SPEC_OBJECT, MEMBERS(custom_members) };
static const struct spec s_customs = { .kind = SG_SPEC_ARRAY, .max = 256, .items = &s_custom };
static const struct member scanning_members[] = {
    { "mode", &s_scan_action, false },
    { "detectors", &s_detectors, false },
    { "actions", &s_scan_action_map, false },
    { "custom", &s_customs, false },
};
static const struct spec s_scanning = { .kind = SG_SPEC_OBJECT, MEMBERS(scanning_members) };

/* approvals, rate limits, audit, origins */
static const struct spec s_timeout_s = INT(1, 86400);
static const struct member approvals_members[] = {
    { "timeout_s", &s_timeout_s, false },
};
static const struct spec s_approvals = { .kind = SG_SPEC_OBJECT, MEMBERS(approvals_members) };
static const struct spec s_per_minute = INT(1, 1000000);
static const struct spec s_rate_scope = ENUM(rate_scopes);
static const struct member rate_limit_members[] = {
    { "name", &s_name, false },
    { "match", &s_match, true },
    { "per_minute", &s_per_minute, true },
    { "burst", &s_per_minute, false },
    { "per", &s_rate_scope, false },
};
static const struct spec s_rate_limit = { .kind = SG_SPEC_OBJECT, MEMBERS(rate_limit_members) };
static const struct spec s_rate_limits = { .kind = SG_SPEC_ARRAY,
                                           .max = 1000,
                                           .items = &s_rate_limit };
static const struct spec s_audit_mode = ENUM(audit_modes);
static const struct spec s_on_unavailable = ENUM(on_unavailable);
static const struct member audit_members[] = {
    { "mode", &s_audit_mode, false },
    { "on_unavailable", &s_on_unavailable, false },
};
static const struct spec s_audit = { .kind = SG_SPEC_OBJECT, MEMBERS(audit_members) };
static const struct spec s_origin = STR(0, 512, sg_bootstrap_test_origin);
static const struct spec s_origins = {
    .kind = SG_SPEC_ARRAY, .max = 1024, .items = &s_origin, .unique = true
};

static const struct spec s_profile = ENUM(profiles);
static const struct member root_members[] = {
    { "tenant", &s_name, true },
    { "profile", &s_profile, true },
    { "upstreams", &s_upstreams, false },
    { "identities", &s_identities, false },
    { "policies", &s_rules, false },
    { "classes", &s_classes, false },
    { "scanning", &s_scanning, false },
    { "approvals", &s_approvals, false },
    { "rate_limits", &s_rate_limits, false },
    { "audit", &s_audit, false },
    { "allowed_origins", &s_origins, false },
};
static const struct spec s_root = { .kind = SG_SPEC_OBJECT, MEMBERS(root_members) };

/* ---- the walker ---------------------------------------------------------- */

static void check_value(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t v);

/* Unicode code points in valid UTF-8 (what JSON Schema lengths count). */
static size_t code_points(sg_str_t s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        n += ((unsigned char)s.ptr[i] & 0xC0) != 0x80;
    }
    return n;
}

/* Decodes a validated JSON string into b (emptied first; left empty on error). */
static sg_str_t decode_into(sg_str_t raw, sg_buf_t *b)
{
    sg_buf_reset(b);
    if (sg_json_string_decode(raw, b) != SG_OK) {
        sg_buf_reset(b);
    }
    return sg_buf_str(b);
}

/* Decodes into w->scratch; the slice lives until the next decode. */
static sg_str_t decode(sg_bootstrap_walk_t *w, sg_str_t raw)
{
    return decode_into(raw, &w->scratch);
}

/* Length and pattern of a decoded string; `what` prefixes the message ("" or "name: "). */
static void check_text(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t s,
                       const char *what)
{
    size_t n = code_points(s);
    if (n < (size_t)spec->min) {
        sg_bootstrap_report(w, "%s%s", what, spec->min == 1 ? "must not be empty" : "is too short");
        return;
    }
    if (spec->max != 0 && n > (size_t)spec->max) {
        sg_bootstrap_report(w, "%smust be at most %lld characters", what, (long long)spec->max);
        return;
    }
    const char *bad = spec->test != NULL ? spec->test(s) : NULL;
    char msg[SG_ERROR_MSG_MAX];
    if (bad == NULL && spec->regex && !sg_bootstrap_regex_ok(s, msg, sizeof(msg))) {
        bad = msg;
    }
    if (bad != NULL) {
        sg_bootstrap_report(w, "%s%s", what, bad);
    }
}

static void check_enum(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t v)
{
    if (sg_json_type(v) == SG_JSON_STRING) {
        sg_str_t s = decode(w, v);
        for (size_t i = 0; spec->values[i] != NULL; i++) {
            if (sg_str_eq_cstr(s, spec->values[i])) {
                return;
            }
        }
    }
    sg_buf_t list = SG_BUF_INIT;
    for (size_t i = 0; spec->values[i] != NULL; i++) {
        sg_buf_printf(&list, "%s%s", i != 0 ? ", " : "", spec->values[i]);
    }
    sg_bootstrap_report(w, "must be one of: %s", list.data);
    sg_buf_dispose(&list);
}

static void check_int(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t v)
{
    int64_t x = 0;
    int rc = sg_json_type(v) == SG_JSON_NUMBER ? sg_json_int64(v, &x) : SG_EPARAMS;
    if (rc == SG_EPARAMS) {
        sg_bootstrap_report(w, "must be an integer");
    } else if (rc == SG_EPARSE) {
        sg_bootstrap_report(w, "must be an integer written without fraction or exponent");
    } else if (rc != SG_OK || x < spec->min || x > spec->max) {
        sg_bootstrap_report(w, "must be between %lld and %lld", (long long)spec->min,
                            (long long)spec->max);
    }
}

/* True when two validated JSON strings decode to the same text. */
static bool same_string(sg_str_t a, sg_str_t b)
{
    sg_str_t pa, pb;
    if (sg_json_string_plain(a, &pa) && sg_json_string_plain(b, &pb)) {
        return sg_str_eq(pa, pb);
    }
    sg_buf_t da = SG_BUF_INIT, db = SG_BUF_INIT;
    bool eq = sg_json_string_decode(a, &da) == SG_OK && sg_json_string_decode(b, &db) == SG_OK &&
              sg_str_eq(sg_buf_str(&da), sg_buf_str(&db));
    sg_buf_dispose(&da);
    sg_buf_dispose(&db);
    return eq;
}

/* items[0..n) are the array's items; reports each string equal to an earlier one. */
static void check_unique(sg_bootstrap_walk_t *w, const sg_str_t *items, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (sg_json_type(items[i]) != SG_JSON_STRING) {
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (sg_json_type(items[j]) == SG_JSON_STRING && same_string(items[i], items[j])) {
                size_t mark = sg_bootstrap_push_index(w, i);
                sg_bootstrap_report(w, "duplicate of item %zu", j);
                sg_bootstrap_pop(w, mark);
                break;
            }
        }
    }
}

static void check_array(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t v)
{
    if (sg_json_type(v) != SG_JSON_ARRAY) {
        sg_bootstrap_report(w, "must be an array");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t item, *items = NULL;
    size_t n = 0;
    while (sg_json_array_next(&it, &item) == 1) {
        size_t mark = sg_bootstrap_push_index(w, n);
        check_value(w, spec->items, item);
        sg_bootstrap_pop(w, mark);
        if (spec->unique && (spec->max == 0 || n < (size_t)spec->max)) {
            items = sg_xrealloc(items, (n + 1) * sizeof(*items));
            items[n] = item;
        }
        n++;
    }
    if (n < (size_t)spec->min) {
        sg_bootstrap_report(w, "must have at least %lld item%s", (long long)spec->min,
                            spec->min == 1 ? "" : "s");
    } else if (spec->max != 0 && n > (size_t)spec->max) {
        sg_bootstrap_report(w, "must have at most %lld items", (long long)spec->max);
    } else if (spec->unique) {
        check_unique(w, items, n);
    }
    free(items);
}

static const struct member *find_member(const struct spec *spec, sg_str_t key)
{
    for (size_t i = 0; i < spec->nmembers; i++) {
        if (sg_str_eq_cstr(key, spec->members[i].name)) {
            return &spec->members[i];
        }
    }
    return NULL;
}

/* Reports the required members of spec that obj lacks, at their would-be pointers. */
static void check_required(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t obj)
{
    for (size_t i = 0; i < spec->nmembers; i++) {
        const struct member *m = &spec->members[i];
        if (m->required && !has_member(obj, m->name)) {
            size_t mark = sg_bootstrap_push_key(w, m->name, strlen(m->name));
            sg_bootstrap_report(w, "required member missing");
            sg_bootstrap_pop(w, mark);
        }
    }
}

static void check_object(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t v)
{
    if (sg_json_type(v) != SG_JSON_OBJECT) {
        sg_bootstrap_report(w, "must be an object");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t key_raw, value;
    sg_buf_t key = SG_BUF_INIT;
    size_t n = 0;
    while (sg_json_object_next(&it, &key_raw, &value) == 1) {
        sg_str_t k = decode_into(key_raw, &key);
        size_t mark = sg_bootstrap_push_key(w, k.ptr, k.len);
        const struct member *m = find_member(spec, k);
        if (m == NULL) {
            sg_bootstrap_report(w, "unknown member");
        } else {
            check_value(w, m->spec, value);
        }
        sg_bootstrap_pop(w, mark);
        n++;
    }
    sg_buf_dispose(&key);
    if (n < (size_t)spec->min) {
        sg_bootstrap_report(w, "must not be empty");
    }
    check_required(w, spec, v);
    if (spec->check != NULL) {
        spec->check(w, v);
    }
}

static void check_map(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t v)
{
    if (sg_json_type(v) != SG_JSON_OBJECT) {
        sg_bootstrap_report(w, "must be an object");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t key_raw, value;
    sg_buf_t key = SG_BUF_INIT;
    size_t n = 0;
    while (sg_json_object_next(&it, &key_raw, &value) == 1) {
        sg_str_t k = decode_into(key_raw, &key);
        size_t mark = sg_bootstrap_push_key(w, k.ptr, k.len);
        check_text(w, spec->keys, k, "member name ");
        check_value(w, spec->items, value);
        sg_bootstrap_pop(w, mark);
        n++;
    }
    sg_buf_dispose(&key);
    if (n < (size_t)spec->min) {
        sg_bootstrap_report(w, "must not be empty");
    } else if (spec->max != 0 && n > (size_t)spec->max) {
        sg_bootstrap_report(w, "must have at most %lld members", (long long)spec->max);
    }
}

static bool kind_accepts(enum sg_spec_kind k, sg_json_type_t t)
{
    switch (k) {
    case SG_SPEC_STRING:
    case SG_SPEC_ENUM:
        return t == SG_JSON_STRING;
    case SG_SPEC_INT:
    case SG_SPEC_NUMBER:
        return t == SG_JSON_NUMBER;
    case SG_SPEC_BOOL:
        return t == SG_JSON_TRUE || t == SG_JSON_FALSE;
    case SG_SPEC_NULL:
        return t == SG_JSON_NULL;
    case SG_SPEC_ARRAY:
        return t == SG_JSON_ARRAY;
    case SG_SPEC_OBJECT:
    case SG_SPEC_MAP:
        return t == SG_JSON_OBJECT;
    case SG_SPEC_CHOICE:
        break;
    }
    return false;
}

static void check_choice(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t v)
{
    sg_json_type_t t = sg_json_type(v);
    for (size_t i = 0; i < spec->nchoices; i++) {
        if (kind_accepts(spec->choices[i]->kind, t)) {
            check_value(w, spec->choices[i], v);
            return;
        }
    }
    sg_bootstrap_report(w, "must be %s", spec->what);
}

static void check_value(sg_bootstrap_walk_t *w, const struct spec *spec, sg_str_t v)
{
    sg_json_type_t t = sg_json_type(v);
    switch (spec->kind) {
    case SG_SPEC_STRING:
        if (t != SG_JSON_STRING) {
            sg_bootstrap_report(w, "must be a string");
        } else {
            check_text(w, spec, decode(w, v), "");
        }
        break;
    case SG_SPEC_INT:
        check_int(w, spec, v);
        break;
    case SG_SPEC_NUMBER:
    case SG_SPEC_BOOL:
    case SG_SPEC_NULL:
        if (!kind_accepts(spec->kind, t)) {
            sg_bootstrap_report(w, "must be %s",
                                spec->kind == SG_SPEC_NUMBER ? "a number"
                                : spec->kind == SG_SPEC_BOOL ? "a boolean"
                                                             : "null");
        }
        break;
    case SG_SPEC_ENUM:
        check_enum(w, spec, v);
        break;
    case SG_SPEC_ARRAY:
        check_array(w, spec, v);
        break;
    case SG_SPEC_OBJECT:
        check_object(w, spec, v);
        break;
    case SG_SPEC_MAP:
        check_map(w, spec, v);
        break;
    case SG_SPEC_CHOICE:
        check_choice(w, spec, v);
        break;
    }
}

void sg_bootstrap_check_schema(sg_bootstrap_walk_t *w, sg_str_t root)
{
    check_value(w, &s_root, sg_json_trim(root));
}
