/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One tenant's compiled configuration snapshot: immutable once built,
 * refcounted (calls keep the snapshot they started with while a reload swaps
 * in the next one). Built from the profile-expanded JSON the control plane
 * stores at sg:{<tenant>}:config (format: docs/CONFIG.md). Holds key hashes,
 * never keys.
 */
#ifndef SG_CORE_TENANT_H
#define SG_CORE_TENANT_H

#include "base/err.h"
#include "base/sg.h"

#define SG_NAME_MAX 64

typedef struct sg_identity_key {
    uint8_t sha256[32];
    uint64_t expires_ms; /* 0 = no expiry (wall clock) */
} sg_identity_key_t;

typedef struct sg_identity {
    char *name;
    char **roles;
    size_t nroles;
    sg_identity_key_t *keys;
    size_t nkeys;
} sg_identity_t;

typedef enum sg_upstream_kind {
    SG_UPSTREAM_STDIO = 0,
    SG_UPSTREAM_HTTP,
} sg_upstream_kind_t;

typedef struct sg_upstream_cfg {
    char *name;
    char *prefix; /* "" = names exposed bare; default: name */
    sg_upstream_kind_t kind;
    char *command; /* stdio */
    char **args;
    size_t nargs;
    char **env; /* "KEY=VALUE" */
    size_t nenv;
    char *cwd;      /* may be NULL */
    char *url;      /* http */
    char **headers; /* "Name: value" */
    size_t nheaders;
    uint64_t timeout_ms;
    char *fingerprint; /* sha256 hex of the upstream's definition: restart it only when this changes
                        */
} sg_upstream_cfg_t;

struct sg_policy;

typedef struct sg_tenant {
    int _refcnt;
    char *name;
    int64_t version;
    char *profile;
    sg_identity_t *identities;
    size_t nidentities;
    sg_upstream_cfg_t *upstreams;
    size_t nupstreams;
    char **allowed_origins;
    size_t norigins;
    struct sg_policy *policy; /* compiled rules (core/policy.h), one reference */
    bool audit_sync;       /* audit.mode "sync": a call's row is durable before it goes upstream */
    bool serve_last_known; /* defaults.redis_unreachable: serve the last known kill-switch
                              state when it cannot be confirmed (else fail closed) */
    char *raw; /* the stored JSON, NUL-terminated: later stages compile their parts from it */
    size_t raw_len;
} sg_tenant_t;

/*
 * Builds a snapshot from the stored JSON (validated here: depth, duplicates,
 * types, names). On SG_OK *out has one reference. On error err says which
 * member is wrong (never quoting secrets).
 */
int sg_tenant_parse(const char *json, size_t len, sg_tenant_t **out, sg_error_t *err) SG_MUSTCHECK;
sg_tenant_t *sg_tenant_ref(sg_tenant_t *t);
void sg_tenant_unref(sg_tenant_t *t);
/* The identity owning the key with this SHA-256 (not expired at now_ms), or NULL. */
const sg_identity_t *sg_tenant_find_key(const sg_tenant_t *t, const uint8_t sha256[32],
                                        uint64_t now_ms);
const sg_upstream_cfg_t *sg_tenant_find_upstream(const sg_tenant_t *t, sg_str_t name);
/* True when s is a valid tenant/identity/upstream name: 1..64 of [A-Za-z0-9_.-]. */
bool sg_name_is_valid(sg_str_t s);

#endif
