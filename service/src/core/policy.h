/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compiled policy of one tenant: an immutable, refcounted snapshot built
 * from the stored tenant document (docs/CONFIG.md, docs/POLICY.md), and the
 * pure functions that decide a call against it. No I/O after compile.
 *
 * Stored shape read by sg_policy_compile() (members of the tenant document;
 * the control plane writes `defaults` from the profile table of DESIGN §4):
 *
 *   "policies": [                                   optional, at most 10000 rules
 *     {"name": "read-workspace",                    required, unique, 1-128 bytes, not "default"
 *      "priority": 100,                             integer, default 0
 *      "action": "allow" | "deny" | "approve",      required
 *      "mode": "enforce" | "shadow",                default "enforce"
 *      "reason": "text",                            optional, shown to the agent
 *      "match": {                                   optional; AND of the fields present
 *        "tool": "fs__read_*" | [...],              globs on the exposed name (* and ?)
 *        "tool_regex": "^fs__(read|list)_",         PCRE2 on the exposed name (unanchored)
 *        "upstream": "fs" | [...],                  upstream names
 *        "method": "tools/call" | [...],            globs on the MCP method
 *        "roles": ["agent"],  "identities": [...],  the caller has any of them
 *        "class": "read" | [...],                   read | write | destructive
 *        "args": {"<path>": {"regex": "...", "equals": <scalar>, "prefix": "...",
 *                            "max_len": <int>, "type": "path" | "string"}},
 *        "args_domain": ["pastebin.com", "*.ngrok.io"]}}],
 *   "classes":  {"<exposed tool name>": "read" | "write" | "destructive"},
 *   "defaults": {"no_match": "deny" | "allow" | "allow_non_destructive",
 *                "approve_destructive": true | false}
 *
 * Without `defaults` the `profile` member decides (strict: deny + approve
 * destructive; standard: allow_non_destructive; permissive: allow); without
 * either, strict. Argument paths are dotted (`options.target`, `items.0`,
 * `a\.b` for a key with a dot). Lists are ORs; fields are ANDed.
 *
 * Order: priority descending; at equal priority deny, approve, allow; then by
 * name (bytewise). The first enforcing rule that matches decides; shadow rules
 * are evaluated and reported but never decide.
 */
#ifndef SG_CORE_POLICY_H
#define SG_CORE_POLICY_H

#include "base/err.h"
#include "base/sg.h"

#define SG_POLICY_MAX_RULES    10000
#define SG_POLICY_MAX_PROBLEMS 256

/* The safe value is zero: a forgotten assignment denies. */
typedef enum sg_decision {
    SG_DECISION_DENY = 0,
    SG_DECISION_APPROVE,
    SG_DECISION_ALLOW,
} sg_decision_t;

/* The most dangerous class is zero: an unclassified call is destructive. */
typedef enum sg_tool_class {
    SG_TOOL_CLASS_DESTRUCTIVE = 0,
    SG_TOOL_CLASS_WRITE,
    SG_TOOL_CLASS_READ,
} sg_tool_class_t;

typedef struct sg_policy sg_policy_t;
typedef struct sg_policy_ctx sg_policy_ctx_t;

/* One problem found by sg_policy_compile(). Strings are owned by the list. */
typedef struct sg_policy_problem {
    char *pointer; /* JSON pointer into the document: "/policies/2/match/args/path/regex" */
    char *error;   /* human text; never quotes argument values */
    long offset;   /* byte offset inside the offending pattern (regexes), else -1 */
} sg_policy_problem_t;

typedef struct sg_policy_problems {
    sg_policy_problem_t *items;
    size_t count;
    bool truncated; /* more than SG_POLICY_MAX_PROBLEMS: the rest are not listed */
} sg_policy_problems_t;

#define SG_POLICY_PROBLEMS_INIT ((sg_policy_problems_t){ NULL, 0, false })

/*
 * Compiles the policy members of a tenant document (`doc` is the whole stored
 * JSON text, borrowed for the call; it is validated here, depth limit
 * SG_JSON_MAX_DEPTH). Regexes are compiled once, with JIT where available.
 *
 * Returns SG_OK and *out with one reference. Otherwise *out is NULL and the
 * result is SG_EPARSE/SG_EUTF8/SG_EDUPKEY/SG_EDEPTH/SG_ENULCHAR when doc is not
 * valid JSON (one problem with pointer ""), or SG_EINVAL when it is valid JSON
 * but the policy members are wrong: then every problem found (up to
 * SG_POLICY_MAX_PROBLEMS) is appended to `problems` (may be NULL; the caller
 * disposes it) and err (may be NULL) summarises the first.
 */
int sg_policy_compile(sg_str_t doc, sg_policy_t **out, sg_policy_problems_t *problems,
                      sg_error_t *err) SG_MUSTCHECK;
void sg_policy_problems_dispose(sg_policy_problems_t *problems);

/* Snapshot references: compile returns one; the last unref frees. NULL is a no-op. */
sg_policy_t *sg_policy_ref(sg_policy_t *p);
void sg_policy_unref(sg_policy_t *p);

/* Number of rules (enforcing and shadow). */
size_t sg_policy_rule_count(const sg_policy_t *p);

/*
 * Evaluation scratch: PCRE2 match data, decode buffers and the domain scanner
 * with its public suffix list. One per thread (per event loop), reused by
 * every evaluation so the hot path does not allocate. Owned by the caller;
 * not tied to any snapshot. sg_policy_ctx_free(NULL) is a no-op.
 */
sg_policy_ctx_t *sg_policy_ctx_new(void);
void sg_policy_ctx_free(sg_policy_ctx_t *ctx);

typedef struct sg_policy_input {
    sg_str_t identity;  /* identity name */
    char *const *roles; /* the identity's roles (sg_identity_t.roles fits); may be NULL */
    size_t nroles;
    sg_str_t tool;              /* exposed name (<prefix>__<tool>), prompt name or resource URI */
    sg_str_t upstream;          /* upstream name; empty when none */
    sg_str_t method;            /* MCP method: "tools/call", "resources/read", ... */
    sg_tool_class_t tool_class; /* from sg_policy_classify() for tools */
    sg_str_t arguments;         /* raw JSON, validated by the caller; empty = {} */
    bool want_trace;            /* fill out->trace (admin evaluate endpoint) */
    sg_policy_ctx_t *ctx;       /* scratch; NULL = a temporary one is made for this call */
} sg_policy_input_t;

/* One rule as tried by an evaluation. Rule names are borrowed from the snapshot. */
typedef struct sg_policy_trace_entry {
    const char *rule;
    bool matched;
    bool shadow;
    char *why; /* owned by the result: "tool: no pattern matches", ... */
} sg_policy_trace_entry_t;

typedef struct sg_policy_result {
    sg_decision_t decision;
    const char *rule;   /* deciding rule name, or "default" (borrowed from the snapshot) */
    const char *reason; /* the rule's reason or a fixed text; never NULL after eval */
    bool escalated;     /* an allow became approve because the call is destructive */
    bool has_shadow;    /* a shadow rule matched: */
    sg_decision_t shadow_decision; /* its action (escalated like a real decision) */
    const char *shadow_rule;
    bool shadow_decisive; /* it comes before the deciding rule: enforcing it would decide */
    sg_policy_trace_entry_t *trace; /* only with want_trace: every rule in order */
    size_t ntrace;
} sg_policy_result_t;

/*
 * Decides one call. p may be NULL (then: deny, rule "default", reason "no
 * policy loaded"). `in` and everything it points to are borrowed for the call;
 * out's strings are borrowed from p (keep a reference while using them) except
 * the trace, which the caller releases with sg_policy_result_dispose(). Never
 * fails: what the engine cannot inspect (a regex over its resource limits, a
 * domain scan over its bounds, an object or array where a test expects a
 * scalar, a path that reads differently once normalised) makes deny and
 * approve rules match and allow rules not. Not thread-safe per ctx.
 */
void sg_policy_eval(const sg_policy_t *p, const sg_policy_input_t *in, sg_policy_result_t *out);
void sg_policy_result_dispose(sg_policy_result_t *out);

/*
 * False only when no rule could ever allow (or send for approval) a tools/call
 * of this tool by this identity: an unconditional deny comes first, or no
 * allow/approve rule can match and the profile default refuses the class.
 * Rules whose outcome depends on arguments keep the tool visible.
 */
bool sg_policy_tool_visible(const sg_policy_t *p, sg_str_t identity, char *const *roles,
                            size_t nroles, sg_str_t tool, sg_str_t upstream,
                            sg_tool_class_t tool_class);

/*
 * Classifies a tool: the tenant's `classes` override for the exposed name
 * first, then the annotations of the upstream's definition (readOnlyHint,
 * destructiveHint; MCP defaults), then verbs in the tool's name, and
 * destructive when nothing says otherwise. `definition` is the raw JSON tool
 * object from the upstream's tools/list (may be empty; its "name" supplies
 * the verbs, else the part of `tool` after "__"). p may be NULL.
 */
sg_tool_class_t sg_policy_classify(const sg_policy_t *p, sg_str_t tool, sg_str_t definition);

const char *sg_policy_decision_name(sg_decision_t d); /* "deny", "approve", "allow" */
const char *sg_policy_class_name(sg_tool_class_t c);  /* "destructive", "write", "read" */
/* Parses "read" / "write" / "destructive"; false otherwise. */
bool sg_policy_class_parse(sg_str_t s, sg_tool_class_t *out);

#endif
