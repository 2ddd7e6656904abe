/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checks across members that a JSON Schema cannot express: names unique in
 * each list, supplied API keys unique, upstream prefixes that cannot make two
 * tools share an exposed name, and rule references to upstreams and
 * identities that exist. They run on every payload that is strict JSON, also
 * when the schema walk found problems, and skip what is malformed (the schema
 * walk reports that), so one answer lists everything.
 */
#include <stdlib.h>

#include "base/json.h"
#include "base/mem.h"
#include "core/bootstrap_int.h"
#include "core/tenant.h"

#define MAX_CHECKED 10000 /* lists longer than the schema allows are not compared */

/* One string member of one item of a list. */
struct entry {
    size_t index; /* position in the list */
    size_t pos;   /* position in its struct entries */
    char *text;   /* decoded value */
    size_t len;
    bool given; /* prefix: written in the payload (else the name) */
};

struct entries {
    struct entry *v;
    size_t n, cap;
};

static void entries_dispose(struct entries *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].text);
    }
    free(e->v);
    *e = (struct entries){ NULL, 0, 0 };
}

static void entries_add(struct entries *e, size_t index, sg_str_t raw, bool given)
{
    sg_buf_t b = SG_BUF_INIT;
    if (sg_json_string_decode(raw, &b) != SG_OK) {
        sg_buf_dispose(&b);
        return;
    }
    if (e->n == e->cap) {
        e->cap = e->cap != 0 ? 2 * e->cap : 16;
        e->v = sg_xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    struct entry *x = &e->v[e->n++];
    x->index = index;
    x->pos = e->n - 1;
    x->len = b.len;
    x->text = sg_buf_steal(&b, NULL);
    x->given = given;
}

/* The string member `key` of each object item of list; false when list is no array. */
static bool collect(sg_str_t list, const char *key, struct entries *out)
{
    if (sg_json_type(list) != SG_JSON_ARRAY) {
        return false;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(list);
    sg_str_t item, v;
    for (size_t i = 0; sg_json_array_next(&it, &item) == 1 && i < MAX_CHECKED; i++) {
        if (sg_json_type(item) == SG_JSON_OBJECT && sg_json_object_get(item, key, &v) == SG_OK &&
            sg_json_type(v) == SG_JSON_STRING) {
            entries_add(out, i, v, true);
        }
    }
    return true;
}

/* ---- pointers ------------------------------------------------------------ */

/* Pushes the segments of a NULL-terminated path; returns the mark to pop to. */
static size_t push_path(sg_bootstrap_walk_t *w, const char *const *path)
{
    size_t mark = w->ptr.len;
    for (size_t i = 0; path[i] != NULL; i++) {
        (void)sg_bootstrap_push_key(w, path[i], strlen(path[i]));
    }
    return mark;
}

/* Reports "<what> (see item <other>)" at <path>/<index>/<member>. */
static void report_item(sg_bootstrap_walk_t *w, const char *const *path, size_t index,
                        const char *member, const char *what, size_t other)
{
    size_t mark = push_path(w, path);
    (void)sg_bootstrap_push_index(w, index);
    (void)sg_bootstrap_push_key(w, member, strlen(member));
    sg_bootstrap_report(w, "%s (see item %zu)", what, other);
    sg_bootstrap_pop(w, mark);
}

/* ---- unique values ------------------------------------------------------- */

static int by_text_then_index(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = x->len != y->len ? (x->len < y->len ? -1 : 1) : memcmp(x->text, y->text, x->len);
    if (c != 0) {
        return c;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool same_text(const struct entry *x, const struct entry *y)
{
    return x->len == y->len && memcmp(x->text, y->text, x->len) == 0;
}

/*
 * Reports every entry whose text an earlier entry has (at the later one, in
 * list order); sorting a copy keeps this O(n log n) on hostile lists.
 */
static void report_duplicates(sg_bootstrap_walk_t *w, const struct entries *e,
                              const char *const *path, const char *member, const char *what)
{
    struct entry *sorted = sg_xcalloc(e->n + 1, sizeof(struct entry));
    size_t *dup_of =
            sg_xcalloc(e->n + 1, sizeof(size_t)); /* list index of the first, or SIZE_MAX */
    if (e->n != 0) {
        memcpy(sorted, e->v, e->n * sizeof(struct entry));
    }
    qsort(sorted, e->n, sizeof(struct entry), by_text_then_index);
    size_t first = 0;
    for (size_t i = 0; i < e->n; i++) {
        bool dup = i > 0 && same_text(&sorted[i - 1], &sorted[i]);
        if (!dup) {
            first = sorted[i].index;
        }
        dup_of[sorted[i].pos] = dup ? first : SIZE_MAX;
    }
    for (size_t i = 0; i < e->n; i++) {
        if (dup_of[i] != SIZE_MAX) {
            report_item(w, path, e->v[i].index, member, what, dup_of[i]);
        }
    }
    free(dup_of);
    free(sorted);
}

/* The list at path (from root) and its entries for member; false when absent or no array. */
static bool list_at(sg_str_t root, const char *const *path, const char *member, struct entries *e)
{
    sg_str_t v = root;
    for (size_t i = 0; path[i] != NULL; i++) {
        if (sg_json_type(v) != SG_JSON_OBJECT || sg_json_object_get(v, path[i], &v) != SG_OK) {
            return false;
        }
    }
    return collect(v, member, e);
}

static void check_unique_member(sg_bootstrap_walk_t *w, sg_str_t root, const char *const *path,
                                const char *member, const char *what)
{
    struct entries e = { NULL, 0, 0 };
    if (list_at(root, path, member, &e)) {
        report_duplicates(w, &e, path, member, what);
    }
    entries_dispose(&e);
}

/* ---- prefixes ------------------------------------------------------------ */

/* The effective prefix of each upstream with a valid name: its prefix, or its name. */
static void collect_prefixes(sg_str_t upstreams, struct entries *out)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(upstreams);
    sg_str_t item, name, prefix, s;
    for (size_t i = 0; sg_json_array_next(&it, &item) == 1 && i < MAX_CHECKED; i++) {
        if (sg_json_type(item) != SG_JSON_OBJECT ||
            sg_json_object_get(item, "name", &name) != SG_OK || !sg_json_string_plain(name, &s) ||
            !sg_name_is_valid(s)) {
            continue;
        }
        if (sg_json_object_get(item, "prefix", &prefix) != SG_OK) {
            entries_add(out, i, name, false);
        } else if (sg_json_string_plain(prefix, &s) && (s.len == 0 || sg_name_is_valid(s))) {
            entries_add(out, i, prefix, true);
        }
    }
}

/* True when a is a non-empty prefix under which b's names also land: b = a "__" ... */
static bool nests(const struct entry *a, const struct entry *b)
{
    return a->len != 0 && b->len > a->len + 2 && memcmp(b->text, a->text, a->len) == 0 &&
           b->text[a->len] == '_' && b->text[a->len + 1] == '_';
}

static void report_prefix(sg_bootstrap_walk_t *w, const struct entry *later, const char *what,
                          size_t other)
{
    static const char *const path[] = { "upstreams", NULL };
    report_item(w, path, later->index, later->given ? "prefix" : "name", what, other);
}

/*
 * Tools are exposed as <prefix>__<tool>: two upstreams with one prefix (also
 * two bare ones, prefix ""), or prefixes "a" and "a__b", could expose two
 * tools under one name. That is a configuration error, never a silent override.
 */
static void check_prefixes(sg_bootstrap_walk_t *w, sg_str_t root)
{
    sg_str_t ups;
    struct entries e = { NULL, 0, 0 };
    if (sg_json_object_get(root, "upstreams", &ups) != SG_OK ||
        sg_json_type(ups) != SG_JSON_ARRAY) {
        return;
    }
    collect_prefixes(ups, &e);
    for (size_t i = 0; i < e.n && e.n <= 256; i++) {
        for (size_t j = 0; j < i; j++) {
            const struct entry *a = &e.v[j], *b = &e.v[i];
            if (same_text(a, b) && !a->given && !b->given) {
                break; /* the same name twice: reported as a duplicate name */
            }
            if (same_text(a, b)) {
                report_prefix(w, b,
                              b->len == 0 ? "tool names may collide: two upstreams are exposed bare"
                                          : "tool names collide: two upstreams have this prefix",
                              a->index);
                break;
            }
            if (nests(a, b) || nests(b, a)) {
                report_prefix(w, b, "tool names may collide: one prefix is the other's plus __",
                              a->index);
                break;
            }
        }
    }
    entries_dispose(&e);
}

/* ---- references ---------------------------------------------------------- */

static bool entries_have(const struct entries *e, sg_str_t s)
{
    for (size_t i = 0; i < e->n; i++) {
        if (sg_str_eq(sg_str_n(e->v[i].text, e->v[i].len), s)) {
            return true;
        }
    }
    return false;
}

/* Reports at the current pointer (or its items) each name in v that known lacks. */
static void check_refs(sg_bootstrap_walk_t *w, sg_str_t v, const struct entries *known,
                       const char *what)
{
    sg_str_t s, item;
    if (sg_json_string_plain(v, &s)) {
        if (sg_name_is_valid(s) && !entries_have(known, s)) {
            sg_bootstrap_report(w, "no %s of this name is declared", what);
        }
        return;
    }
    if (sg_json_type(v) != SG_JSON_ARRAY) {
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    for (size_t i = 0; sg_json_array_next(&it, &item) == 1 && i < MAX_CHECKED; i++) {
        size_t mark = sg_bootstrap_push_index(w, i);
        if (sg_json_string_plain(item, &s) && sg_name_is_valid(s) && !entries_have(known, s)) {
            sg_bootstrap_report(w, "no %s of this name is declared", what);
        }
        sg_bootstrap_pop(w, mark);
    }
}

/* match.upstream and match.identities of every item of the list `key` (policies, rate_limits). */
static void check_list_refs(sg_bootstrap_walk_t *w, sg_str_t root, const char *key,
                            const struct entries *ups, const struct entries *ids)
{
    sg_str_t list, item, match, v;
    if (sg_json_object_get(root, key, &list) != SG_OK || sg_json_type(list) != SG_JSON_ARRAY) {
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(list);
    for (size_t i = 0; sg_json_array_next(&it, &item) == 1 && i < MAX_CHECKED; i++) {
        if (sg_json_type(item) != SG_JSON_OBJECT ||
            sg_json_object_get(item, "match", &match) != SG_OK ||
            sg_json_type(match) != SG_JSON_OBJECT) {
            continue;
        }
        const char *const path[] = { key, NULL };
        size_t mark = push_path(w, path);
        (void)sg_bootstrap_push_index(w, i);
        (void)sg_bootstrap_push_key(w, "match", 5);
        size_t at = w->ptr.len;
        if (ups != NULL && sg_json_object_get(match, "upstream", &v) == SG_OK) {
            (void)sg_bootstrap_push_key(w, "upstream", 8);
            check_refs(w, v, ups, "upstream");
            sg_bootstrap_pop(w, at);
        }
        if (ids != NULL && sg_json_object_get(match, "identities", &v) == SG_OK) {
            (void)sg_bootstrap_push_key(w, "identities", 10);
            check_refs(w, v, ids, "identity");
            sg_bootstrap_pop(w, at);
        }
        sg_bootstrap_pop(w, mark);
    }
}

/*
 * Rules naming an upstream or identity that does not exist would silently
 * never match: a deny rule with a typo is no rule at all. (Roles are free
 * labels and are not checked.) Skipped when the declared list is itself malformed.
 */
static void check_references(sg_bootstrap_walk_t *w, sg_str_t root)
{
    struct entries ups = { NULL, 0, 0 }, ids = { NULL, 0, 0 };
    sg_str_t v;
    bool have_ups = sg_json_object_get(root, "upstreams", &v) != SG_OK || collect(v, "name", &ups);
    bool have_ids = sg_json_object_get(root, "identities", &v) != SG_OK || collect(v, "name", &ids);
    check_list_refs(w, root, "policies", have_ups ? &ups : NULL, have_ids ? &ids : NULL);
    check_list_refs(w, root, "rate_limits", have_ups ? &ups : NULL, have_ids ? &ids : NULL);
    entries_dispose(&ups);
    entries_dispose(&ids);
}

/* ---- entry --------------------------------------------------------------- */

void sg_bootstrap_check_rules(sg_bootstrap_walk_t *w, sg_str_t root)
{
    static const char *const upstreams[] = { "upstreams", NULL };
    static const char *const identities[] = { "identities", NULL };
    static const char *const policies[] = { "policies", NULL };
    static const char *const custom[] = { "scanning", "custom", NULL };
    static const char *const rate_limits[] = { "rate_limits", NULL };
    root = sg_json_trim(root);
    if (sg_json_type(root) != SG_JSON_OBJECT) {
        return;
    }
    check_unique_member(w, root, upstreams, "name", "duplicate upstream name");
    check_unique_member(w, root, identities, "name", "duplicate identity name");
    check_unique_member(w, root, identities, "api_key", "duplicate API key");
    check_unique_member(w, root, policies, "name", "duplicate policy name");
    check_unique_member(w, root, custom, "name", "duplicate detector name");
    check_unique_member(w, root, rate_limits, "name", "duplicate rate limit name");
    check_prefixes(w, root);
    check_references(w, root);
}
