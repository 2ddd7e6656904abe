/* SPDX-License-Identifier: Apache-2.0 */
/* Blocking kill-switch writes for the CLI (see killswitch_store.h). */
#include "store/killswitch_store.h"

#include <sys/time.h>

#include <stdio.h>

#include <hiredis/hiredis.h>

#include "core/tenant.h"
#include "io/redis.h"
#include "store/keys.h"

static int run(redisContext *c, sg_error_t *err, int argc, const char **argv)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (r == NULL) {
        return sg_error_set(err, SG_EIO, "redis: connection lost during %s", argv[0]);
    }
    int rc = r->type == REDIS_REPLY_ERROR
                     ? sg_error_set(err, SG_EBACKEND, "redis refused %s", argv[0])
                     : SG_OK;
    freeReplyObject(r);
    return rc;
}

static int auth_and_select(redisContext *c, const sg_redis_url_t *u, sg_error_t *err)
{
    char db[16];
    snprintf(db, sizeof(db), "%d", u->db);
    if (u->password[0] != '\0') {
        const char *argv[] = { "AUTH", u->password };
        if (run(c, err, 2, argv) != SG_OK) {
            return sg_error_set(err, SG_EBACKEND, "redis: authentication failed");
        }
    }
    const char *sel[] = { "SELECT", db };
    return u->db != 0 ? run(c, err, 2, sel) : SG_OK;
}

int sg_killswitch_store_set(const char *redis_url, const char *tenant, const char *identity,
                            bool engaged, sg_error_t *err)
{
    sg_redis_url_t u;
    if (sg_redis_parse_url(redis_url, &u, err) != SG_OK) {
        return SG_ESETTING;
    }
    if ((tenant != NULL && !sg_name_is_valid(sg_str(tenant))) ||
        (identity != NULL && (tenant == NULL || !sg_name_is_valid(sg_str(identity))))) {
        return sg_error_set(err, SG_EINVAL,
                            "--tenant and --identity take names of 1-64 "
                            "[A-Za-z0-9_.-]; --identity needs --tenant");
    }
    char key[200];
    if (tenant == NULL) {
        snprintf(key, sizeof(key), "%s", SG_KEY_KILL_GLOBAL);
    } else if (identity == NULL) {
        snprintf(key, sizeof(key), SG_KEY_KILL_TENANT_FMT, tenant);
    } else {
        snprintf(key, sizeof(key), SG_KEY_KILL_IDENTITY_FMT, tenant, identity);
    }
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectWithTimeout(u.host, u.port, tv);
    if (c == NULL || c->err != 0) {
        int rc = sg_error_set(err, SG_EIO, "cannot reach redis at %s:%d", u.host, u.port);
        redisFree(c);
        return rc;
    }
    redisSetTimeout(c, tv);
    int rc = auth_and_select(c, &u, err);
    const char *set[] = { "SET", key, "1" };
    const char *del[] = { "DEL", key };
    const char *pub[] = { "PUBLISH", SG_CHANNEL_EVENTS, SG_EVENT_KILLSWITCH };
    if (rc == SG_OK) {
        rc = engaged ? run(c, err, 3, set) : run(c, err, 2, del);
    }
    if (rc == SG_OK) {
        rc = run(c, err, 3, pub);
    }
    redisFree(c);
    memset(&u, 0, sizeof(u));
    return rc;
}
