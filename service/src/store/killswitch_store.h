/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flipping kill switches from a command line (`sentinel-gate killswitch`),
 * for ops without the control plane: a blocking Redis connection, so never
 * call this from the event loop.
 */
#ifndef SG_STORE_KILLSWITCH_STORE_H
#define SG_STORE_KILLSWITCH_STORE_H

#include "base/err.h"

/*
 * Engages (SET <key> 1) or releases (DEL <key>) the switch of the scope —
 * global when tenant is NULL, the tenant's, or one identity's — then publishes
 * "killswitch" on sg:events so replicas react at once. SG_OK, or SG_ESETTING /
 * SG_EIO / SG_EBACKEND with err set (never containing the password).
 */
int sg_killswitch_store_set(const char *redis_url, const char *tenant, const char *identity,
                            bool engaged, sg_error_t *err) SG_MUSTCHECK;

#endif
