/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tenants: POST /bootstrap, GET /tenants, GET and DELETE /tenants/{t}, key
 * rotation POST /tenants/{t}/identities/{name}/keys and key removal DELETE
 * /tenants/{t}/identities/{name}/keys/{key_id}.
 *
 * Every change follows one path (tenant_op_t): read the tenant's latest row
 * from PostgreSQL, build the next stored document, insert it with its
 * admin_actions row in one statement, publish it in Redis (document, then
 * version pointer, then event), answer. A change that would produce the same
 * document is not written again (bootstrapping the same payload twice is
 * harmless). API keys are generated here, returned once, stored as SHA-256.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/mem.h"
#include "control/control_int.h"
#include "control/tenant_doc.h"
#include "core/bootstrap.h"
#include "core/session_token.h"
#include "core/tenant.h"
#include "io/http_reply.h"
#include "store/tenant_store.h"

#define MAX_GRACE_S (30 * 24 * 3600)

typedef enum op_kind {
    OP_BOOTSTRAP = 0,
    OP_ROTATE,
    OP_DELETE_KEY,
    OP_DELETE_TENANT,
} op_kind_t;

typedef struct tenant_op {
    sg_http_guard_t guard; /* first */
    sg_control_t *c;
    op_kind_t kind;
    char tenant[SG_NAME_MAX + 1];
    char identity[SG_NAME_MAX + 1];
    char key_id[SG_NAME_MAX + 1];
    int64_t grace_s;
    sg_bootstrap_t *boot;
    char *details; /* redacted, for admin_actions */
    sg_pg_query_t q;
    sg_tenant_publish_t pub;
    int64_t new_version;
    char *new_text; /* NULL for a deletion */
    bool unchanged;
    sg_buf_t answer; /* JSON members of the answer after tenant and version */
    char actor[96];
} tenant_op_t;

static void op_free(sg_http_guard_t *g)
{
    tenant_op_t *op = (tenant_op_t *)g;
    sg_bootstrap_free(op->boot);
    free(op->details);
    free(op->new_text);
    sg_buf_dispose(&op->answer);
}

static void op_reply(tenant_op_t *op, int status, const char *error)
{
    if (op->guard.req == NULL) {
        return;
    }
    if (error != NULL) {
        sg_api_error(op->guard.req, status, error);
        return;
    }
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_cstr(&b, "{\"tenant\":");
    sg_json_write_cstr(&b, op->tenant);
    sg_buf_printf(&b, ",\"version\":%" PRId64, op->new_version);
    sg_buf_append_str(&b, sg_buf_str(&op->answer));
    sg_buf_append_char(&b, '}');
    sg_http_reply_json(op->guard.req, status, sg_buf_str(&b));
    sg_buf_dispose(&b);
}

/* ---- the common path: insert, publish, answer ---- */

static void on_published(sg_tenant_publish_t *p, int status)
{
    tenant_op_t *op = SG_CONTAINER_OF(p, tenant_op_t, pub);
    if (status != SG_OK) {
        SG_LOG_ERROR(&op->c->log,
                     "tenant %s version %" PRId64 " stored but not published in "
                     "Redis; the recovery loop retries",
                     op->tenant, op->new_version);
        op_reply(op, 503,
                 "stored in PostgreSQL, but Redis did not take it yet; it will be "
                 "published by the recovery loop");
    } else {
        op_reply(op, 200, NULL);
    }
    sg_http_guard_unref(&op->guard);
}

static void publish(tenant_op_t *op)
{
    sg_tenant_store_publish(op->c->redis, &op->pub, op->tenant, op->new_version, op->new_text,
                            on_published);
}

static void on_inserted(sg_pg_query_t *q, int status, const PGresult *res)
{
    tenant_op_t *op = SG_CONTAINER_OF(q, tenant_op_t, q);
    if (status != SG_OK) {
        const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        bool conflict = state != NULL && strcmp(state, "23505") == 0;
        op_reply(op, conflict ? 409 : 503,
                 conflict ? "the tenant changed concurrently; retry" : "PostgreSQL unavailable");
        sg_http_guard_unref(&op->guard);
        return;
    }
    publish(op);
}

static void insert(tenant_op_t *op, const char *action)
{
    sg_tenant_row_t row = { .tenant = op->tenant,
                            .version = op->new_version,
                            .config_text = op->new_text != NULL ? op->new_text : "{}",
                            .deleted = op->new_text == NULL,
                            .actor = op->actor,
                            .action = action,
                            .details = op->details };
    sg_tenant_store_insert(op->c->pg, &op->q, &row, on_inserted);
}

/* ---- reading the latest row ---- */

typedef struct current {
    bool exists;      /* a live (not deleted) row */
    int64_t version;  /* of the latest row, deleted or not; 0 when none */
    const char *text; /* borrowed from the PGresult */
} current_t;

static int read_current(int status, const PGresult *res, current_t *cur)
{
    memset(cur, 0, sizeof(*cur));
    if (status != SG_OK) {
        return status;
    }
    if (PQntuples(res) == 1) {
        cur->version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        cur->text = PQgetvalue(res, 0, 1);
        cur->exists = strcmp(PQgetvalue(res, 0, 2), "f") == 0;
    }
    return SG_OK;
}

/* ---- bootstrap ---- */

/* Decides each identity's key: supplied, kept from the current document, or generated. */
static void bootstrap_keys(tenant_op_t *op, const current_t *cur, char (*hashes)[65],
                           sg_buf_t *idents)
{
    size_t n = sg_bootstrap_identity_count(op->boot);
    for (size_t i = 0; i < n; i++) {
        const char *name = sg_bootstrap_identity_name(op->boot, i);
        const char *supplied = sg_bootstrap_identity_api_key(op->boot, i);
        sg_str_t keys;
        char key[SG_API_KEY_LEN + 1] = "";
        sg_buf_append_cstr(idents, i == 0 ? "{\"name\":" : ",{\"name\":");
        sg_json_write_cstr(idents, name);
        if (supplied != NULL) {
            sg_sha256_hex(supplied, strlen(supplied), hashes[i]);
            sg_buf_append_cstr(idents, ",\"api_key\":null,\"key\":\"supplied\"}");
        } else if (cur->exists && sg_doc_identity_keys(sg_str(cur->text), name, &keys) == SG_OK) {
            memset(hashes[i], '0', 64); /* replaced by the kept keys below */
            hashes[i][64] = '\0';
            sg_buf_append_cstr(idents, ",\"api_key\":null,\"key\":\"kept\"}");
        } else {
            sg_doc_new_key(key, hashes[i]);
            sg_buf_append_cstr(idents, ",\"api_key\":");
            sg_json_write_cstr(idents, key);
            sg_buf_append_cstr(idents, ",\"key\":\"generated\"}");
            memset(key, 0, sizeof(key));
        }
    }
}

/* The stored document at version, with kept identities' keys copied from the current one. */
static int bootstrap_doc(tenant_op_t *op, const current_t *cur, int64_t version,
                         const char *const *hashes, char **out)
{
    sg_buf_t doc = SG_BUF_INIT;
    if (sg_bootstrap_expand(op->boot, version, hashes, &doc) != SG_OK) {
        sg_buf_dispose(&doc);
        return SG_EINVAL;
    }
    size_t n = sg_bootstrap_identity_count(op->boot);
    for (size_t i = 0; i < n && cur->exists; i++) {
        const char *name = sg_bootstrap_identity_name(op->boot, i);
        sg_str_t keys;
        if (sg_bootstrap_identity_api_key(op->boot, i) != NULL ||
            sg_doc_identity_keys(sg_str(cur->text), name, &keys) != SG_OK) {
            continue;
        }
        sg_buf_t next = SG_BUF_INIT;
        if (sg_doc_set_identity_keys(sg_buf_str(&doc), name, keys, &next) == SG_OK) {
            sg_buf_dispose(&doc);
            doc = next;
        } else {
            sg_buf_dispose(&next);
        }
    }
    *out = sg_buf_steal(&doc, NULL);
    return SG_OK;
}

static void on_bootstrap_current(sg_pg_query_t *q, int status, const PGresult *res)
{
    tenant_op_t *op = SG_CONTAINER_OF(q, tenant_op_t, q);
    current_t cur;
    if (read_current(status, res, &cur) != SG_OK) {
        op_reply(op, 503, "PostgreSQL unavailable; nothing changed");
        sg_http_guard_unref(&op->guard);
        return;
    }
    size_t n = sg_bootstrap_identity_count(op->boot);
    char(*hashes)[65] = sg_xcalloc(n + 1, sizeof(*hashes));
    const char **hash_ptrs = sg_xcalloc(n + 1, sizeof(char *));
    sg_buf_t idents = SG_BUF_INIT;
    bootstrap_keys(op, &cur, hashes, &idents);
    for (size_t i = 0; i < n; i++) {
        hash_ptrs[i] = hashes[i];
    }
    char *same = NULL;
    int rc = SG_OK;
    if (cur.exists && bootstrap_doc(op, &cur, cur.version, hash_ptrs, &same) == SG_OK &&
        strcmp(same, cur.text) == 0) {
        op->unchanged = true; /* the same payload again: nothing to write */
        op->new_version = cur.version;
        op->new_text = same;
        same = NULL;
    } else {
        op->new_version = cur.version + 1;
        rc = bootstrap_doc(op, &cur, op->new_version, hash_ptrs, &op->new_text);
    }
    free(same);
    sg_buf_printf(&op->answer, ",\"unchanged\":%s,\"identities\":[",
                  op->unchanged ? "true" : "false");
    sg_buf_append_str(&op->answer, sg_buf_str(&idents));
    sg_buf_append_char(&op->answer, ']');
    sg_buf_dispose(&idents);
    memset(hashes, 0, (n + 1) * sizeof(*hashes));
    free(hashes);
    free(hash_ptrs);
    if (rc != SG_OK) {
        op_reply(op, 500, "could not build the stored configuration");
        sg_http_guard_unref(&op->guard);
    } else if (op->unchanged) {
        publish(op); /* make sure Redis holds it (harmless when it does) */
    } else {
        insert(op, "bootstrap");
    }
}

void sg_api_bootstrap(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    (void)p;
    sg_problems_t problems = SG_PROBLEMS_INIT;
    sg_bootstrap_t *boot = NULL;
    sg_str_t ctype = sg_http_header(req, "content-type");
    if (ctype.len < 16 || strncasecmp(ctype.ptr, "application/json", 16) != 0) {
        sg_api_error(req, 415, "Content-Type must be application/json");
        return;
    }
    const char *body = req->entity.base != NULL ? req->entity.base : "";
    if (sg_bootstrap_validate(body, req->entity.len, &boot, &problems) != SG_OK) {
        sg_buf_t list = SG_BUF_INIT;
        sg_problems_write_json(&problems, &list);
        sg_api_problems(req, sg_buf_str(&list));
        sg_buf_dispose(&list);
        sg_problems_dispose(&problems);
        return;
    }
    sg_problems_dispose(&problems);
    tenant_op_t *op = sg_http_guard_new(req, sizeof(*op), op_free);
    op->c = c;
    op->kind = OP_BOOTSTRAP;
    op->boot = boot;
    snprintf(op->tenant, sizeof(op->tenant), "%s", sg_bootstrap_tenant(boot));
    sg_buf_t details = SG_BUF_INIT;
    if (sg_bootstrap_redact(body, req->entity.len, &details) != SG_OK) {
        sg_buf_append_cstr(&details, "{}");
    }
    op->details = sg_buf_steal(&details, NULL);
    sg_api_actor(req, op->actor, sizeof(op->actor));
    sg_tenant_store_current(c->pg, &op->q, op->tenant, on_bootstrap_current);
}

/* ---- key rotation and removal ---- */

/* The current document with identity's keys replaced and the version bumped. */
static int edit_keys(tenant_op_t *op, const current_t *cur, sg_str_t new_keys)
{
    sg_buf_t step = SG_BUF_INIT, doc = SG_BUF_INIT;
    int rc = sg_doc_set_identity_keys(sg_str(cur->text), op->identity, new_keys, &step);
    if (rc == SG_OK) {
        op->new_version = cur->version + 1;
        rc = sg_doc_set_version(sg_buf_str(&step), op->new_version, &doc);
    }
    sg_buf_dispose(&step);
    if (rc != SG_OK) {
        sg_buf_dispose(&doc);
        return rc;
    }
    op->new_text = sg_buf_steal(&doc, NULL);
    return SG_OK;
}

static void on_keys_current(sg_pg_query_t *q, int status, const PGresult *res)
{
    tenant_op_t *op = SG_CONTAINER_OF(q, tenant_op_t, q);
    current_t cur;
    sg_str_t old_keys;
    if (read_current(status, res, &cur) != SG_OK) {
        op_reply(op, 503, "PostgreSQL unavailable; nothing changed");
    } else if (!cur.exists ||
               sg_doc_identity_keys(sg_str(cur.text), op->identity, &old_keys) != SG_OK) {
        op_reply(op, 404, "no such tenant or identity");
    } else {
        sg_buf_t keys = SG_BUF_INIT;
        bool ok = true;
        if (op->kind == OP_ROTATE) {
            char key[SG_API_KEY_LEN + 1], sha[65];
            sg_doc_new_key(key, sha);
            uint64_t now = sg_clock_wall_ms();
            sg_doc_rotate_keys(old_keys, sha, now, (uint64_t)op->grace_s * 1000, &keys);
            sg_buf_append_cstr(&op->answer, ",\"identity\":");
            sg_json_write_cstr(&op->answer, op->identity);
            sg_buf_append_cstr(&op->answer, ",\"api_key\":");
            sg_json_write_cstr(&op->answer, key);
            sg_buf_printf(&op->answer, ",\"key_id\":\"%.16s\",\"old_keys_expire_at_ms\":%" PRIu64,
                          sha, op->grace_s > 0 ? now + (uint64_t)op->grace_s * 1000 : now);
            memset(key, 0, sizeof(key));
        } else {
            ok = sg_doc_remove_key(old_keys, op->key_id, &keys);
            sg_buf_append_cstr(&op->answer, ",\"identity\":");
            sg_json_write_cstr(&op->answer, op->identity);
            sg_buf_printf(&op->answer, ",\"deleted_key\":\"%s\"", op->key_id);
        }
        if (!ok) {
            op_reply(op, 404, "no key of this identity has that id");
        } else if (edit_keys(op, &cur, sg_buf_str(&keys)) != SG_OK) {
            op_reply(op, 500, "could not edit the stored configuration");
        } else {
            sg_buf_dispose(&keys);
            insert(op, op->kind == OP_ROTATE ? "key.rotate" : "key.delete");
            return;
        }
        sg_buf_dispose(&keys);
    }
    sg_http_guard_unref(&op->guard);
}

static tenant_op_t *new_op(sg_control_t *c, h2o_req_t *req, op_kind_t kind,
                           const sg_api_params_t *p)
{
    if (!sg_name_is_valid(sg_str(p->v[0])) || (p->n > 1 && !sg_name_is_valid(sg_str(p->v[1])))) {
        sg_api_error(req, 404, "no such tenant or identity");
        return NULL;
    }
    tenant_op_t *op = sg_http_guard_new(req, sizeof(*op), op_free);
    op->c = c;
    op->kind = kind;
    snprintf(op->tenant, sizeof(op->tenant), "%s", p->v[0]);
    if (p->n > 1) {
        snprintf(op->identity, sizeof(op->identity), "%s", p->v[1]);
    }
    sg_api_actor(req, op->actor, sizeof(op->actor));
    return op;
}

void sg_api_key_rotate(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    int64_t grace = 0;
    if (req->entity.len != 0) {
        sg_str_t body, v;
        if (!sg_api_body_object(req, &body)) {
            return;
        }
        sg_json_iter_t it = SG_JSON_ITER_INIT(body);
        sg_str_t k;
        while (sg_json_object_next(&it, &k, &v) == 1) {
            if (!sg_json_string_eq(k, "grace_s") || sg_json_int64(v, &grace) != SG_OK ||
                grace < 0 || grace > MAX_GRACE_S) {
                sg_api_problems(req, SG_STR_LIT("[{\"pointer\":\"/grace_s\",\"error\":\"the only "
                                                "member: seconds the old keys stay valid, "
                                                "0..2592000\"}]"));
                return;
            }
        }
    }
    tenant_op_t *op = new_op(c, req, OP_ROTATE, p);
    if (op == NULL) {
        return;
    }
    op->grace_s = grace;
    char details[128];
    snprintf(details, sizeof(details), "{\"identity\":\"%s\",\"grace_s\":%" PRId64 "}",
             op->identity, grace);
    op->details = sg_xstrdup(details);
    sg_tenant_store_current(c->pg, &op->q, op->tenant, on_keys_current);
}

void sg_api_key_delete(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    size_t idlen = strlen(p->v[2]);
    bool hex = idlen >= 8 && idlen <= 64 && strspn(p->v[2], "0123456789abcdef") == idlen;
    if (!hex) {
        sg_api_error(req, 404, "a key id is 8 to 64 lower-case hex digits of its SHA-256");
        return;
    }
    tenant_op_t *op = new_op(c, req, OP_DELETE_KEY, p);
    if (op == NULL) {
        return;
    }
    snprintf(op->key_id, sizeof(op->key_id), "%s", p->v[2]);
    char details[200];
    snprintf(details, sizeof(details), "{\"identity\":\"%s\",\"key_id\":\"%s\"}", op->identity,
             op->key_id);
    op->details = sg_xstrdup(details);
    sg_tenant_store_current(c->pg, &op->q, op->tenant, on_keys_current);
}

/* ---- delete a tenant ---- */

static void on_delete_current(sg_pg_query_t *q, int status, const PGresult *res)
{
    tenant_op_t *op = SG_CONTAINER_OF(q, tenant_op_t, q);
    current_t cur;
    if (read_current(status, res, &cur) != SG_OK) {
        op_reply(op, 503, "PostgreSQL unavailable; nothing changed");
    } else if (!cur.exists) {
        op_reply(op, 404, "no such tenant");
    } else {
        op->new_version = cur.version + 1;
        op->new_text = NULL;
        sg_buf_append_cstr(&op->answer, ",\"deleted\":true");
        insert(op, "tenant.delete");
        return;
    }
    sg_http_guard_unref(&op->guard);
}

void sg_api_tenant_delete(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    tenant_op_t *op = new_op(c, req, OP_DELETE_TENANT, p);
    if (op != NULL) {
        op->details = sg_xstrdup("{}");
        sg_tenant_store_current(c->pg, &op->q, op->tenant, on_delete_current);
    }
}

/* ---- reads ---- */

typedef struct read_op {
    sg_http_guard_t guard; /* first */
    sg_pg_query_t q;
    char tenant[SG_NAME_MAX + 1];
} read_op_t;

static void on_list(sg_pg_query_t *q, int status, const PGresult *res)
{
    read_op_t *r = SG_CONTAINER_OF(q, read_op_t, q);
    if (r->guard.req != NULL && status != SG_OK) {
        sg_api_error(r->guard.req, 503, "PostgreSQL unavailable");
    } else if (r->guard.req != NULL) {
        sg_buf_t b = SG_BUF_INIT;
        sg_buf_append_cstr(&b, "{\"tenants\":[");
        for (int i = 0; i < PQntuples(res); i++) {
            sg_buf_append_cstr(&b, i == 0 ? "{\"tenant\":" : ",{\"tenant\":");
            sg_json_write_cstr(&b, PQgetvalue(res, i, 0));
            sg_buf_printf(&b, ",\"version\":%s,\"updated_at\":", PQgetvalue(res, i, 1));
            sg_json_write_cstr(&b, PQgetvalue(res, i, 2));
            sg_buf_append_cstr(&b, ",\"updated_by\":");
            sg_json_write_cstr(&b, PQgetvalue(res, i, 3));
            sg_buf_append_char(&b, '}');
        }
        sg_buf_append_cstr(&b, "]}");
        sg_http_reply_json(r->guard.req, 200, sg_buf_str(&b));
        sg_buf_dispose(&b);
    }
    sg_http_guard_unref(&r->guard);
}

void sg_api_tenants_list(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    (void)p;
    read_op_t *r = sg_http_guard_new(req, sizeof(*r), NULL);
    sg_tenant_store_list(c->pg, &r->q, on_list);
}

static void on_get(sg_pg_query_t *q, int status, const PGresult *res)
{
    read_op_t *r = SG_CONTAINER_OF(q, read_op_t, q);
    current_t cur;
    sg_buf_t redacted = SG_BUF_INIT;
    if (r->guard.req == NULL) {
        /* the agent is gone */
    } else if (read_current(status, res, &cur) != SG_OK) {
        sg_api_error(r->guard.req, 503, "PostgreSQL unavailable");
    } else if (!cur.exists) {
        sg_api_error(r->guard.req, 404, "no such tenant");
    } else if (sg_bootstrap_redact(cur.text, strlen(cur.text), &redacted) != SG_OK) {
        sg_api_error(r->guard.req, 500, "stored configuration is not valid JSON");
    } else {
        sg_buf_t b = SG_BUF_INIT;
        sg_buf_append_cstr(&b, "{\"tenant\":");
        sg_json_write_cstr(&b, r->tenant);
        sg_buf_printf(&b, ",\"version\":%" PRId64 ",\"config\":", cur.version);
        sg_buf_append_str(&b, sg_buf_str(&redacted));
        sg_buf_append_char(&b, '}');
        sg_http_reply_json(r->guard.req, 200, sg_buf_str(&b));
        sg_buf_dispose(&b);
    }
    sg_buf_dispose(&redacted);
    sg_http_guard_unref(&r->guard);
}

void sg_api_tenant_get(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    if (!sg_name_is_valid(sg_str(p->v[0]))) {
        sg_api_error(req, 404, "no such tenant");
        return;
    }
    read_op_t *r = sg_http_guard_new(req, sizeof(*r), NULL);
    snprintf(r->tenant, sizeof(r->tenant), "%s", p->v[0]);
    sg_tenant_store_current(c->pg, &r->q, r->tenant, on_get);
}
