/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time. The h2o loop clock is wall time; deadlines use this one. */
#ifndef SG_BASE_CLOCK_H
#define SG_BASE_CLOCK_H

#include "base/sg.h"

uint64_t sg_clock_now_ms(void);
uint64_t sg_clock_now_us(void);
/* Wall clock, milliseconds since the epoch (for tokens and audit timestamps). */
uint64_t sg_clock_wall_ms(void);

#endif
