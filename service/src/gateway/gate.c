/* SPDX-License-Identifier: Apache-2.0 */
typedef int sg_placeholder_gate_t;
