/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decisions against a compiled policy snapshot (policy_load.c builds it).
 *
 * The hot path: the rules that can concern a call are the union of three
 * ascending lists (rules indexed under the exact tool name, under the
 * upstream, and the rest), merged in the total order; the first enforcing
 * rule that matches decides, and once it has, only shadow rules are still
 * looked at (and only while none has matched). Cheap fields are tested
 * first; argument tests and the domain scan run last, the scan at most once
 * per evaluation. With want_trace every rule is walked in order instead, so
 * an operator sees why each one did or did not match; both walks decide the
 * same (the unit tests check it on every vector).
 */
#include "core/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"
#include "core/policy_int.h"

#define MATCH_LIMIT   1000000u
#define HEAP_LIMIT_KB 8192u
#define JIT_STACK_MIN (32u << 10)
#define JIT_STACK_MAX (1u << 20)

/* ---- snapshots and contexts -------------------------------------------------- */

sg_policy_t *sg_policy_ref(sg_policy_t *p)
{
    if (p != NULL) {
        __atomic_add_fetch(&p->refcnt, 1, __ATOMIC_RELAXED);
    }
    return p;
}

void sg_policy_unref(sg_policy_t *p)
{
    if (p != NULL && __atomic_sub_fetch(&p->refcnt, 1, __ATOMIC_ACQ_REL) == 0) {
        sg_policy_destroy(p);
    }
}

size_t sg_policy_rule_count(const sg_policy_t *p)
{
    return p != NULL ? p->nrules : 0;
}

sg_policy_ctx_t *sg_policy_ctx_new(void)
{
    sg_policy_ctx_t *ctx = sg_xcalloc(1, sizeof(*ctx));
    ctx->md = pcre2_match_data_create(1, NULL);
    ctx->mctx = pcre2_match_context_create(NULL);
    SG_BUG_ON(ctx->md == NULL || ctx->mctx == NULL);
    pcre2_set_match_limit(ctx->mctx, MATCH_LIMIT);
    pcre2_set_heap_limit(ctx->mctx, HEAP_LIMIT_KB);
    ctx->jit_stack = pcre2_jit_stack_create(JIT_STACK_MIN, JIT_STACK_MAX, NULL);
    if (ctx->jit_stack != NULL) {
        pcre2_jit_stack_assign(ctx->mctx, NULL, ctx->jit_stack);
    }
    return ctx;
}

void sg_policy_ctx_free(sg_policy_ctx_t *ctx)
{
    if (ctx == NULL) {
        return;
    }
    pcre2_match_data_free(ctx->md);
    pcre2_match_context_free(ctx->mctx);
    pcre2_jit_stack_free(ctx->jit_stack);
    sg_buf_dispose(&ctx->value);
    sg_buf_dispose(&ctx->norm);
    sg_domains_scan_free(ctx->scan);
    free(ctx);
}

void sg_policy_result_dispose(sg_policy_result_t *out)
{
    if (out == NULL) {
        return;
    }
    for (size_t i = 0; i < out->ntrace; i++) {
        free(out->trace[i].why);
    }
    free(out->trace);
    out->trace = NULL;
    out->ntrace = 0;
}

/* ---- matching one rule ------------------------------------------------------- */

/* The argument-independent fields (everything tools/list visibility can know). */
struct who {
    sg_str_t identity;
    char *const *roles;
    size_t nroles;
    sg_str_t tool, upstream, method;
    sg_tool_class_t tool_class;
};

struct eval {
    const sg_policy_t *p;
    const sg_policy_input_t *in;
    sg_policy_ctx_t *ctx;
    sg_policy_result_t *out;
    const sg_policy_rule_t *decider;
    bool shadow_found;
    sg_buf_t *why; /* NULL unless tracing */
    struct who w;  /* the argument-independent view of the call */
};

static bool any_glob(char *const *globs, size_t n, sg_str_t s)
{
    for (size_t i = 0; i < n; i++) {
        if (sg_policy_glob(globs[i], s)) {
            return true;
        }
    }
    return false;
}

static bool any_equal(char *const *v, size_t n, sg_str_t s)
{
    for (size_t i = 0; i < n; i++) {
        if (sg_str_eq_cstr(s, v[i])) {
            return true;
        }
    }
    return false;
}

static bool any_role(const sg_policy_rule_t *r, char *const *roles, size_t nroles)
{
    for (size_t i = 0; i < nroles; i++) {
        if (roles[i] != NULL && any_equal(r->roles, r->nroles, sg_str(roles[i]))) {
            return true;
        }
    }
    return false;
}

static sg_policy_tri_t tool_regex_match(const sg_policy_rule_t *r, sg_policy_ctx_t *ctx,
                                        sg_str_t tool)
{
    sg_policy_tri_t best = SG_POLICY_NO;
    for (size_t i = 0; i < r->ntool_regexes && best != SG_POLICY_YES; i++) {
        sg_policy_tri_t t = sg_policy_regex_test(ctx, r->tool_regexes[i], tool);
        best = t == SG_POLICY_YES || best == SG_POLICY_NO ? t : best;
    }
    return best;
}

static sg_policy_tri_t static_match(const sg_policy_rule_t *r, const struct who *w,
                                    sg_policy_ctx_t *ctx, sg_buf_t *why)
{
    if (r->nmethods != 0 && !any_glob(r->methods, r->nmethods, w->method)) {
        sg_policy_note(why, "method: not one of the rule's methods");
    } else if (r->ntools != 0 && !(r->tools_literal ? any_equal(r->tools, r->ntools, w->tool)
                                                    : any_glob(r->tools, r->ntools, w->tool))) {
        sg_policy_note(why, "tool: no pattern matches");
    } else if (r->nupstreams != 0 && !any_equal(r->upstreams, r->nupstreams, w->upstream)) {
        sg_policy_note(why, "upstream: not one of the rule's upstreams");
    } else if (r->nidentities != 0 && !any_equal(r->identities, r->nidentities, w->identity)) {
        sg_policy_note(why, "identities: not one of the rule's identities");
    } else if (r->nroles != 0 && !any_role(r, w->roles, w->nroles)) {
        sg_policy_note(why, "roles: the identity has none of the rule's roles");
    } else if (r->classes != 0 && (r->classes & SG_POLICY_CLASS_BIT(w->tool_class)) == 0) {
        sg_policy_note(why, "class: the call is %s", sg_policy_class_name(w->tool_class));
    } else if (r->ntool_regexes != 0) {
        sg_policy_tri_t t = tool_regex_match(r, ctx, w->tool);
        if (t != SG_POLICY_YES) {
            sg_policy_note(why, "tool_regex: %s",
                           t == SG_POLICY_NO ? "no pattern matches"
                                             : "a pattern hit a resource limit");
        }
        return t;
    } else {
        return SG_POLICY_YES;
    }
    return SG_POLICY_NO;
}

static sg_policy_tri_t domain_match(struct eval *ev, const sg_policy_rule_t *r)
{
    sg_policy_ctx_t *ctx = ev->ctx;
    if (ctx->scan == NULL) {
        ctx->scan = sg_domains_scan_new();
    }
    if (!ctx->scanned) {
        sg_domains_scan_reset(ctx->scan);
        sg_domains_scan_json(ctx->scan, ev->in->arguments);
        ctx->scanned = true;
    }
    const char *host = sg_domains_list_match(r->domains, ctx->scan);
    if (host != NULL) {
        sg_policy_note(ev->why, "args_domain: %s", host);
        return SG_POLICY_YES;
    }
    if (sg_domains_scan_truncated(ctx->scan)) {
        sg_policy_note(ev->why, "args_domain: the arguments exceed the scan bounds");
        return SG_POLICY_UNSURE;
    }
    sg_policy_note(ev->why, "args_domain: no listed domain in the arguments");
    return SG_POLICY_NO;
}

static sg_policy_tri_t args_match(struct eval *ev, const sg_policy_rule_t *r)
{
    sg_policy_tri_t res = SG_POLICY_YES;
    for (size_t i = 0; i < r->nargs; i++) {
        sg_policy_tri_t t = sg_policy_argtest_run(&r->args[i], ev->ctx, ev->in->arguments, ev->why);
        if (t == SG_POLICY_NO) {
            return t;
        }
        res = t == SG_POLICY_UNSURE ? t : res;
    }
    if (r->domains != NULL) {
        sg_policy_tri_t t = domain_match(ev, r);
        if (t == SG_POLICY_NO) {
            return t;
        }
        res = t == SG_POLICY_UNSURE ? t : res;
    }
    return res;
}

/* Uncertainty fails closed: it matches a deny or approve rule and never an allow rule. */
static bool resolve_tri(sg_policy_tri_t t, const sg_policy_rule_t *r, sg_buf_t *why)
{
    if (t != SG_POLICY_UNSURE) {
        return t == SG_POLICY_YES;
    }
    if (why != NULL) {
        sg_buf_append_cstr(why, r->action == SG_DECISION_ALLOW ? " (uncertain: not an allow)"
                                                               : " (uncertain: counts as a match)");
    }
    return r->action != SG_DECISION_ALLOW;
}

static bool rule_matches(struct eval *ev, const sg_policy_rule_t *r)
{
    if (ev->why != NULL) {
        sg_buf_reset(ev->why);
        sg_buf_append_cstr(ev->why, "matched");
    }
    sg_policy_tri_t t = static_match(r, &ev->w, ev->ctx, ev->why);
    if (t != SG_POLICY_NO && (r->nargs != 0 || r->domains != NULL)) {
        sg_policy_tri_t a = args_match(ev, r);
        t = a == SG_POLICY_NO ? a : (a == SG_POLICY_UNSURE ? a : t);
    }
    return resolve_tri(t, r, ev->why);
}

/* ---- the index ------------------------------------------------------------- */

static uint64_t hash_key(sg_str_t k)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < k.len; i++) {
        h = (h ^ (unsigned char)k.ptr[i]) * 1099511628211ull;
    }
    return h;
}

static sg_policy_bucket_t *index_slot(const sg_policy_index_t *ix, sg_str_t key)
{
    size_t i = (size_t)hash_key(key) & (ix->cap - 1);
    while (ix->slots[i].key != NULL && !sg_str_eq_cstr(key, ix->slots[i].key)) {
        i = (i + 1) & (ix->cap - 1);
    }
    return &ix->slots[i];
}

const sg_policy_bucket_t *sg_policy_index_find(const sg_policy_index_t *ix, sg_str_t key)
{
    if (ix->cap == 0) {
        return NULL;
    }
    const sg_policy_bucket_t *b = index_slot(ix, key);
    return b->key != NULL ? b : NULL;
}

static void index_add(sg_policy_index_t *ix, size_t *used, const char *key, uint32_t rule)
{
    if (2 * (*used + 1) > ix->cap) {
        sg_policy_index_t grown = { sg_xcalloc(ix->cap != 0 ? 2 * ix->cap : 16,
                                               sizeof(sg_policy_bucket_t)),
                                    ix->cap != 0 ? 2 * ix->cap : 16 };
        for (size_t i = 0; i < ix->cap; i++) {
            if (ix->slots[i].key != NULL) {
                *index_slot(&grown, sg_str(ix->slots[i].key)) = ix->slots[i];
            }
        }
        free(ix->slots);
        *ix = grown;
    }
    sg_policy_bucket_t *b = index_slot(ix, sg_str(key));
    if (b->key == NULL) {
        b->key = sg_xstrdup(key);
        (*used)++;
    }
    if (b->n == 0 || b->rules[b->n - 1] != rule) {
        b->rules = sg_policy_grow(b->rules, b->n, sizeof(uint32_t));
        b->rules[b->n++] = rule;
    }
}

static bool all_literal(char *const *globs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!sg_policy_glob_is_literal(globs[i])) {
            return false;
        }
    }
    return n != 0;
}

void sg_policy_index_build(sg_policy_t *p)
{
    size_t used_tool = 0, used_up = 0;
    for (uint32_t i = 0; i < (uint32_t)p->nrules; i++) {
        sg_policy_rule_t *r = &p->rules[i];
        r->tools_literal = all_literal(r->tools, r->ntools);
        if (r->tools_literal) {
            for (size_t k = 0; k < r->ntools; k++) {
                index_add(&p->by_tool, &used_tool, r->tools[k], i);
            }
        } else if (r->nupstreams != 0) {
            for (size_t k = 0; k < r->nupstreams; k++) {
                index_add(&p->by_upstream, &used_up, r->upstreams[k], i);
            }
        } else {
            p->generic = sg_policy_grow(p->generic, p->ngeneric, sizeof(uint32_t));
            p->generic[p->ngeneric++] = i;
        }
    }
}

static void index_dispose(sg_policy_index_t *ix)
{
    for (size_t i = 0; i < ix->cap; i++) {
        free(ix->slots[i].key);
        free(ix->slots[i].rules);
    }
    free(ix->slots);
}

void sg_policy_index_dispose(sg_policy_t *p)
{
    index_dispose(&p->by_tool);
    index_dispose(&p->by_upstream);
    free(p->generic);
}

/* ---- walking the rules ------------------------------------------------------- */

static void add_trace(struct eval *ev, const sg_policy_rule_t *r, bool matched, const char *why)
{
    sg_policy_result_t *out = ev->out;
    out->trace = sg_policy_grow(out->trace, out->ntrace, sizeof(*out->trace));
    out->trace[out->ntrace++] =
            (sg_policy_trace_entry_t){ r->name, matched, r->shadow, sg_xstrdup(why) };
}

/* Considers rule i; returns true when nothing later can change the result. */
static bool visit(struct eval *ev, size_t i)
{
    const sg_policy_rule_t *r = &ev->p->rules[i];
    if (r->shadow ? ev->shadow_found : ev->decider != NULL) {
        if (ev->why != NULL) {
            char msg[256];
            snprintf(msg, sizeof(msg), "not evaluated: %s matched first",
                     r->shadow ? ev->out->shadow_rule : ev->decider->name);
            add_trace(ev, r, false, msg);
        }
    } else {
        bool m = rule_matches(ev, r);
        if (ev->why != NULL) {
            add_trace(ev, r, m, ev->why->data);
        }
        if (m && r->shadow) {
            ev->shadow_found = true;
            ev->out->has_shadow = true;
            ev->out->shadow_rule = r->name;
            ev->out->shadow_decision = r->action;
            ev->out->shadow_decisive = ev->decider == NULL;
        } else if (m) {
            ev->decider = r;
        }
    }
    return ev->why == NULL && ev->decider != NULL && (!ev->p->has_shadow || ev->shadow_found);
}

/* The rules that can concern a tool: three ascending lists merged in the total order. */
struct cands {
    const uint32_t *lists[3];
    size_t lens[3];
    size_t at[3];
};

static void cands_init(struct cands *c, const sg_policy_t *p, sg_str_t tool, sg_str_t upstream)
{
    const sg_policy_bucket_t *bt = sg_policy_index_find(&p->by_tool, tool);
    const sg_policy_bucket_t *bu = sg_policy_index_find(&p->by_upstream, upstream);
    *c = (struct cands){ { bt != NULL ? bt->rules : NULL, bu != NULL ? bu->rules : NULL,
                           p->generic },
                         { bt != NULL ? bt->n : 0, bu != NULL ? bu->n : 0, p->ngeneric },
                         { 0, 0, 0 } };
}

static uint32_t cands_head(const struct cands *c, size_t k)
{
    return c->at[k] < c->lens[k] ? c->lists[k][c->at[k]] : UINT32_MAX;
}

static bool cands_next(struct cands *c, size_t *out)
{
    if (c->lens[0] == 0 && c->lens[1] == 0) { /* only generic rules: no merge */
        if (c->at[2] == c->lens[2]) {
            return false;
        }
        *out = c->lists[2][c->at[2]++];
        return true;
    }
    uint32_t next = SG_MIN(cands_head(c, 0), SG_MIN(cands_head(c, 1), cands_head(c, 2)));
    if (next == UINT32_MAX) {
        return false;
    }
    for (size_t k = 0; k < 3; k++) {
        c->at[k] += cands_head(c, k) == next ? 1 : 0;
    }
    *out = next;
    return true;
}

static void walk_indexed(struct eval *ev)
{
    struct cands c;
    size_t i;
    cands_init(&c, ev->p, ev->in->tool, ev->in->upstream);
    while (cands_next(&c, &i) && !visit(ev, i)) {
    }
}

static const char *action_reason(sg_decision_t d)
{
    return d == SG_DECISION_ALLOW     ? "allowed by policy"
           : d == SG_DECISION_APPROVE ? "approval required"
                                      : "denied by policy";
}

static void apply_default(const sg_policy_t *p, const sg_policy_input_t *in,
                          sg_policy_result_t *out)
{
    out->rule = "default";
    if (p->no_match == SG_POLICY_NO_MATCH_ALLOW) {
        out->decision = SG_DECISION_ALLOW;
        out->reason = "no rule matched; the profile allows";
    } else if (p->no_match == SG_POLICY_NO_MATCH_ALLOW_NON_DESTRUCTIVE &&
               in->tool_class != SG_TOOL_CLASS_DESTRUCTIVE) {
        out->decision = SG_DECISION_ALLOW;
        out->reason = "no rule matched; the profile allows non-destructive calls";
    } else {
        out->decision = SG_DECISION_DENY;
        out->reason = p->no_match == SG_POLICY_NO_MATCH_DENY
                              ? "no rule allows this call"
                              : "no rule matched; the profile denies destructive calls";
    }
}

void sg_policy_eval(const sg_policy_t *p, const sg_policy_input_t *in, sg_policy_result_t *out)
{
    *out = (sg_policy_result_t){ .decision = SG_DECISION_DENY,
                                 .rule = "default",
                                 .reason = "no policy loaded" };
    if (p == NULL) {
        return;
    }
    sg_policy_ctx_t *tmp = in->ctx == NULL ? sg_policy_ctx_new() : NULL;
    sg_buf_t why = SG_BUF_INIT;
    struct eval ev = { .p = p,
                       .in = in,
                       .ctx = tmp != NULL ? tmp : in->ctx,
                       .out = out,
                       .why = in->want_trace ? &why : NULL,
                       .w = { in->identity, in->roles, in->nroles, in->tool, in->upstream,
                              in->method, in->tool_class } };
    ev.ctx->scanned = false;
    if (in->want_trace) {
        for (size_t i = 0; i < p->nrules; i++) {
            (void)visit(&ev, i);
        }
    } else {
        walk_indexed(&ev);
    }
    if (ev.decider != NULL) {
        out->decision = ev.decider->action;
        out->rule = ev.decider->name;
        out->reason =
                ev.decider->reason != NULL ? ev.decider->reason : action_reason(ev.decider->action);
    } else {
        apply_default(p, in, out);
    }
    if (p->approve_destructive && in->tool_class == SG_TOOL_CLASS_DESTRUCTIVE) {
        if (out->decision == SG_DECISION_ALLOW) {
            out->decision = SG_DECISION_APPROVE;
            out->escalated = true;
            out->reason = "destructive calls need a human approval";
        }
        if (out->has_shadow && out->shadow_decision == SG_DECISION_ALLOW) {
            out->shadow_decision = SG_DECISION_APPROVE;
        }
    }
    ev.ctx->scanned = false;
    sg_buf_dispose(&why);
    sg_policy_ctx_free(tmp);
}

/* ---- visibility ------------------------------------------------------------- */

bool sg_policy_tool_visible(const sg_policy_t *p, sg_str_t identity, char *const *roles,
                            size_t nroles, sg_str_t tool, sg_str_t upstream,
                            sg_tool_class_t tool_class)
{
    if (p == NULL) {
        return false;
    }
    struct who w = {
        identity, roles, nroles, tool, upstream, SG_STR_LIT("tools/call"), tool_class
    };
    sg_policy_ctx_t *ctx = NULL;
    int verdict = -1; /* -1: undecided, 0: hidden, 1: visible */
    struct cands c;
    size_t i;
    cands_init(&c, p, tool, upstream);
    while (verdict < 0 && cands_next(&c, &i)) {
        const sg_policy_rule_t *r = &p->rules[i];
        if (r->shadow) {
            continue;
        }
        if (r->ntool_regexes != 0 && ctx == NULL) {
            ctx = sg_policy_ctx_new();
        }
        sg_policy_tri_t t = static_match(r, &w, ctx, NULL);
        bool conditional = t == SG_POLICY_UNSURE || r->nargs != 0 || r->domains != NULL;
        if (t == SG_POLICY_NO) {
            continue;
        }
        if (r->action != SG_DECISION_DENY) {
            verdict = 1; /* allow or approve: a call may pass */
        } else if (!conditional) {
            verdict = 0; /* an unconditional deny comes first */
        }
    }
    sg_policy_ctx_free(ctx);
    if (verdict >= 0) {
        return verdict == 1;
    }
    return p->no_match == SG_POLICY_NO_MATCH_ALLOW ||
           (p->no_match == SG_POLICY_NO_MATCH_ALLOW_NON_DESTRUCTIVE &&
            tool_class != SG_TOOL_CLASS_DESTRUCTIVE);
}
