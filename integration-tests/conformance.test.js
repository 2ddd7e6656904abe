// SPDX-License-Identifier: Apache-2.0
//
// The official MCP conformance suite (@modelcontextprotocol/conformance 0.1.16, server
// scenarios) against the gate:
//
//   conformance CLI (Node 22) -> haproxy (adds the API key) -> sentinel-gate /mcp
//       -> fixtures/conformance-server.mjs (stdio upstream, bare names)
//
// so the suite exercises the gate's relay paths: progress, logging, sampling / elicitation
// routing, subscriptions, completion, concurrent POST streams, Origin checks. The CLI runs
// with conformance/baseline.yml; the test passes when only the scenarios listed there fail.
//
// Needs haproxy (ops/deps) and the pinned CLI: npm ci --prefix integration-tests/conformance.
// Run alone: cd integration-tests && node --test conformance.test.js
// SG_CONFORMANCE_ARGS adds CLI options (split on spaces), e.g. "--scenario tools-call-sampling"
// or "-o /tmp/conformance-results" (checks.json per scenario) or "--verbose".
// Manual runs against a running gate: see conformance/run and conformance/haproxy.cfg.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { migrate, request, startGate, startPostgres, startRedis, waitFor } from './lib/harness.js';
import {
    conformanceMissing,
    listToolNames,
    runConformance,
    startHaproxy,
    tenantConfig,
    writeTenant,
} from './lib/conformance.js';

const TENANT = 'conf';
const FIXTURE_TOOLS = [
    'test_simple_text',
    'test_image_content',
    'test_audio_content',
    'test_embedded_resource',
    'test_multiple_content_types',
    'test_tool_with_logging',
    'test_tool_with_progress',
    'test_error_handling',
    'test_sampling',
    'test_elicitation',
    'test_elicitation_sep1034_defaults',
    'test_elicitation_sep1330_enums',
    'test_reconnection',
];

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

let gate;
let proxy;

before(async () => {
    const missing = conformanceMissing();
    if (missing) throw new Error(missing);

    const [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
    await migrate(pg.url);
    gate = await startGate({ redisUrl: redis.url, dbUrl: pg.url });
    await waitFor(async () => (await request(`${gate.url}/readyz`)).status === 200, {
        timeoutMs: 20000,
        message: 'gate /readyz 200',
    });

    const apiKey = `sgk_${crypto.randomBytes(24).toString('hex')}`;
    proxy = await startHaproxy({ gatePort: gate.port, apiKey });

    // dns-rebinding-protection sends Origin http://<host:port of the URL under test> and
    // expects it to work (and a foreign one to be refused): that is the proxy's address.
    await writeTenant(
        redis.url,
        tenantConfig({
            tenant: TENANT,
            apiKey,
            allowedOrigins: [`http://127.0.0.1:${proxy.port}`, `http://localhost:${proxy.port}`],
        }),
    );

    // The tenant is loaded and its upstream listed once the fixture's tools show up (bare).
    let last = null;
    await waitFor(
        async () => {
            last = null;
            const names = await listToolNames(`${proxy.url}/mcp`).catch((err) => {
                last = err.message;
                return [];
            });
            return FIXTURE_TOOLS.every((n) => names.includes(n));
        },
        { timeoutMs: 30000, intervalMs: 250, message: 'the fixture tools listed through haproxy and the gate' },
    ).catch((err) => {
        throw new Error(`${err.message}; last: ${last}\n--- gate output ---\n${gate.logs().slice(-6000)}`);
    });
});

test('MCP conformance suite 0.1.16 (server scenarios) through the gate: only baselined failures', { timeout: 900000 }, async () => {
    const extra = (process.env.SG_CONFORMANCE_ARGS || '').split(/\s+/).filter(Boolean);
    const r = await runConformance(`${proxy.url}/mcp`, extra, { timeoutMs: 600000 });
    const output = stripAnsi(r.output);
    // Printed whole so that the per-scenario checks and the "Total: N passed, M failed" line
    // are in the test log.
    process.stdout.write(`${output}\n`);

    const total = output.match(/^Total: \d+ passed, \d+ failed.*$/m);
    const detail =
        `conformance CLI exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''} after ${r.ms} ms` +
        `\n--- gate output (tail) ---\n${gate.logs().slice(-8000)}` +
        `\n--- haproxy output (tail) ---\n${proxy.logs().slice(-3000)}`;
    assert.ok(total, `no Total line in the CLI output; ${detail}`);
    assert.equal(r.code, 0, `unexpected failures or stale baseline entries (${total[0]}); ${detail}`);
});
