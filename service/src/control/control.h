/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control plane attached to a runtime: the admin API under
 * /admin/api/v1/ (Bearer SG_ADMIN_TOKEN, compared in constant time: 401
 * without a token, 403 with a wrong one).
 */
#ifndef SG_CONTROL_CONTROL_H
#define SG_CONTROL_CONTROL_H

#include "base/err.h"
#include "store/runtime.h"

typedef struct sg_control sg_control_t;

/* Registers the control plane's routes on rt (borrowed until free). NULL on error. */
sg_control_t *sg_control_new(sg_runtime_t *rt, sg_error_t *err);
void sg_control_free(sg_control_t *c);

#endif
