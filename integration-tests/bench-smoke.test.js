// SPDX-License-Identifier: Apache-2.0
//
// Benchmark smoke: `ops/bench --smoke` builds the fixtures and the load generator, starts its
// own Redis, PostgreSQL, gate and proxies, drives every scenario for a moment and prints its
// table. Only that it runs to the end is checked here: figures are never asserted in tests
// (docs/PERFORMANCE.md holds them).
//
// Environment (set by ctest): SG_SOURCE_DIR, the repository root; SG_BIN, the gate binary,
// passed on as --gate-bin so that no Release build is needed here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = path.resolve(process.env.SG_SOURCE_DIR || path.join(HERE, '..'));
const TIMEOUT_MS = 240_000; // a first `npm ci` in bench/ may take a while; the run itself ~30 s

const TABLE_HEADER = '| scenario | conc | calls/s | p50 µs | p90 µs | p99 µs | p99.9 µs |';

function runBench(args) {
    const env = { ...process.env, SG_BENCH_SKIP_DEPS: '1' };
    return new Promise((resolve) => {
        const child = spawn(path.join(SOURCE_DIR, 'ops', 'bench'), args, {
            cwd: SOURCE_DIR,
            env,
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => {
            stdout += d;
        });
        child.stderr.on('data', (d) => {
            stderr += d;
            if (stderr.length > 1 << 20) stderr = stderr.slice(-(1 << 19));
        });
        // SIGTERM lets ops/bench's trap stop everything it started.
        const timer = setTimeout(() => child.kill('SIGTERM'), TIMEOUT_MS);
        child.on('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

test('ops/bench --smoke runs every scenario and prints the table', { timeout: TIMEOUT_MS + 30_000 }, async () => {
    const args = ['--smoke'];
    // relative to the repository root, as in lib/harness.js
    const bin = process.env.SG_BIN ? path.resolve(SOURCE_DIR, process.env.SG_BIN) : null;
    if (bin !== null && fs.existsSync(bin)) args.push('--gate-bin', bin);
    const r = await runBench(args);
    const detail = `exit ${r.code ?? r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr (tail) ---\n${r.stderr.slice(-6000)}`;
    assert.equal(r.code, 0, detail);
    assert.ok(r.stdout.split('\n').some((l) => l.startsWith(TABLE_HEADER)), `no table header\n${detail}`);
});
