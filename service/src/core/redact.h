/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Redaction of tool arguments before they are written anywhere (audit rows,
 * debug logs): the value of every member whose name looks like a credential
 * (password, secret, token, api_key, authorization, cookie, credential,
 * private_key, ...) is replaced by "[redacted]", at any depth. The scanner
 * (content scanning issue) adds the values its detectors flag.
 */
#ifndef SG_CORE_REDACT_H
#define SG_CORE_REDACT_H

#include "base/buf.h"
#include "base/sg.h"

/* True when a member named name should never be stored. */
bool sg_redact_is_secret_name(sg_str_t name);
/*
 * Appends a copy of json (validated JSON) with secret-named members' values replaced.
 * Nesting beyond the depth limit is replaced whole by "[redacted: too deep]".
 */
void sg_redact_json(sg_str_t json, sg_buf_t *out);

#endif
