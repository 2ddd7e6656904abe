/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Edits of a stored tenant document (docs/CONFIG.md) by splicing raw JSON
 * spans, so everything not edited keeps its exact bytes (replicas fingerprint
 * upstream definitions by their bytes).
 */
#ifndef SG_CONTROL_TENANT_DOC_H
#define SG_CONTROL_TENANT_DOC_H

#include "base/buf.h"
#include "base/err.h"
#include "base/sg.h"

#define SG_API_KEY_LEN 67 /* "sg_" + 64 hex digits */

/* A new API key (sg_ + 32 random bytes as hex) and its SHA-256 as hex. */
void sg_doc_new_key(char key[SG_API_KEY_LEN + 1], char sha256_hex[65]);
/* The raw "keys" array of identity name, or SG_ENOTFOUND. */
int sg_doc_identity_keys(sg_str_t doc, const char *identity, sg_str_t *keys) SG_MUSTCHECK;
/* doc with identity's "keys" replaced by keys_raw, appended to out; SG_ENOTFOUND if absent. */
int sg_doc_set_identity_keys(sg_str_t doc, const char *identity, sg_str_t keys_raw,
                             sg_buf_t *out) SG_MUSTCHECK;
/* doc with its "version" replaced, appended to out. */
int sg_doc_set_version(sg_str_t doc, int64_t version, sg_buf_t *out) SG_MUSTCHECK;
/*
 * Appends to out the keys array for a rotation: the new key first, then every old key
 * still alive at now_ms with its expiry set to min(its own, now_ms + grace_ms); with
 * grace_ms 0 the old keys are dropped.
 */
void sg_doc_rotate_keys(sg_str_t old_keys, const char *new_sha256, uint64_t now_ms,
                        uint64_t grace_ms, sg_buf_t *out);
/* Appends old_keys without the key whose sha256 starts with id; false when none matched. */
bool sg_doc_remove_key(sg_str_t old_keys, const char *id, sg_buf_t *out);

#endif
