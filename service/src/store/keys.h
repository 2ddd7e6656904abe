/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every Redis key and channel the project uses (DESIGN §5), and nowhere else.
 * Per-tenant keys carry the tenant in a hash tag so one tenant's keys share a
 * Redis Cluster slot.
 */
#ifndef SG_STORE_KEYS_H
#define SG_STORE_KEYS_H

#define SG_KEY_TENANTS           "sg:tenants"     /* hash tenant -> version */
#define SG_KEY_CONFIG_FMT        "sg:{%s}:config" /* tenant */
#define SG_KEY_SECRET            "sg:secret:session"
#define SG_KEY_KILL_GLOBAL       "sg:killswitch"
#define SG_KEY_KILL_TENANT_FMT   "sg:{%s}:killswitch"    /* tenant */
#define SG_KEY_KILL_IDENTITY_FMT "sg:{%s}:killswitch:%s" /* tenant, identity */
#define SG_KEY_REVOKED_SESSIONS  "sg:revoked-sessions"   /* zset nonce -> expiry ms */
#define SG_CHANNEL_EVENTS        "sg:events"

/* Messages on SG_CHANNEL_EVENTS */
#define SG_EVENT_KILLSWITCH     "killswitch"
#define SG_EVENT_CONFIG_PREFIX  "config "  /* config <tenant> <version> */
#define SG_EVENT_REVOKED_PREFIX "revoked " /* revoked <nonce> */
#define SG_EVENT_TOOLS_PREFIX   "tools "   /* tools <tenant> */

#endif
