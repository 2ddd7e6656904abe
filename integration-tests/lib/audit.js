// SPDX-License-Identifier: Apache-2.0
//
// Helpers for the policy and audit tests (policy.test.js, audit.test.js): a stack of Redis,
// a migrated PostgreSQL and the control plane; gate replicas; raw Streamable HTTP sessions on
// kept-alive connections (for load); audit_events reads; `sentinel-gate audit verify`; and a
// tiny stdio MCP server whose tools/call fails on purpose (upstream failures).
//
// Everything talks to 127.0.0.1 only; every loop is bounded.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after } from 'node:test';

import { migrate, runBin, scratchDir, startGate, startPostgres, startRedis, tempDir, waitFor, withPg } from './harness.js';
import { EVERYTHING_BIN, FILESYSTEM_BIN, PROTOCOL_VERSION, parseSse, redisClient, waitReady } from './mcp.js';
import { adminApi } from './control.js';

export { EVERYTHING_BIN, FILESYSTEM_BIN };

/* ------------------------------------------------------------------------------------------
 * The stack
 * ---------------------------------------------------------------------------------------- */

/**
 * Redis, PostgreSQL (migrated) and `sentinel-gate control`. Returns
 * {redisSrv, redis (client), pg, dbUrl, redisUrl, control, admin}.
 */
export async function startStack({ controlEnv = {} } = {}) {
    scratchDir();
    const [redisSrv, pg] = await Promise.all([startRedis(), startPostgres()]);
    await migrate(pg.url);
    const redis = await redisClient(redisSrv.url);
    const control = await startGate({
        redisUrl: redisSrv.url,
        dbUrl: pg.url,
        command: 'control',
        env: { SG_REPLICA_ID: 'control', SG_LOG_LEVEL: 'info', ...controlEnv },
    });
    const admin = adminApi(control.url, control.adminToken);
    return { redisSrv, redis, pg, dbUrl: pg.url, redisUrl: redisSrv.url, control, admin };
}

/** A gate replica of stack, ready (its /readyz 200). env overrides (SG_REPLICA_ID, SG_SPOOL_DIR, ...). */
export async function startReplica(stack, { env = {}, readyTimeoutMs = 30000 } = {}) {
    const g = await startGate({ redisUrl: stack.redisUrl, dbUrl: stack.dbUrl, env: { SG_LOG_LEVEL: 'info', ...env } });
    await waitReady(g, { timeoutMs: readyTimeoutMs });
    return g;
}

export const everything = (name = 'ev', extra = {}) => ({ name, command: EVERYTHING_BIN, args: ['stdio'], ...extra });
export const filesystem = (name, dir, extra = {}) => ({ name, command: FILESYSTEM_BIN, args: [dir], ...extra });

/** The api_key the bootstrap answer generated for identity name. */
export function keyFor(answer, name) {
    const id = answer.identities.find((i) => i.name === name);
    if (!id || !id.api_key) throw new Error(`no new key for ${name} in ${JSON.stringify(answer)}`);
    return id.api_key;
}

/* ------------------------------------------------------------------------------------------
 * Raw sessions on kept-alive connections
 * ---------------------------------------------------------------------------------------- */

const agents = new Set();
after(() => {
    for (const a of agents) a.destroy();
    agents.clear();
});

/** A keep-alive http.Agent (destroyed when the test file ends). */
export function keepAliveAgent(maxSockets = 16) {
    const a = new http.Agent({ keepAlive: true, maxSockets });
    agents.add(a);
    return a;
}

/** One POST of body (string) to url on agent. Resolves {status, headers, body}; rejects on socket errors. */
export function postKeepAlive(url, headers, body, { agent, timeoutMs = 15000 } = {}) {
    const u = new URL(url);
    if (u.hostname !== '127.0.0.1') return Promise.reject(new Error(`postKeepAlive: refusing ${u.hostname}`));
    return new Promise((resolve, reject) => {
        const payload = Buffer.from(body);
        const req = http.request(
            {
                host: u.hostname,
                port: u.port,
                path: u.pathname,
                method: 'POST',
                agent,
                headers: { ...headers, 'Content-Length': String(payload.length) },
                timeout: timeoutMs,
            },
            (res) => {
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
                res.on('error', reject);
            },
        );
        req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out after ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end(payload);
    });
}

/** The JSON-RPC messages of a JSON or SSE answer. */
export function messagesOf(r) {
    const ctype = String(r.headers['content-type'] || '');
    if (ctype.startsWith('text/event-stream')) return parseSse(r.body);
    if (ctype.startsWith('application/json') && r.body !== '') {
        const j = JSON.parse(r.body);
        return Array.isArray(j) ? j : [j];
    }
    return [];
}

/**
 * An initialized MCP session on gate (raw Streamable HTTP, kept-alive connections of agent).
 * call(name, args, id) resolves {status, response (the JSON-RPC message with that id), raw}.
 */
export async function openSession(gateUrl, key, { agent = keepAliveAgent(4), timeoutMs = 15000 } = {}) {
    const url = `${gateUrl}/mcp`;
    const base = {
        Accept: 'application/json, text/event-stream',
        'Content-Type': 'application/json',
        Authorization: `Bearer ${key}`,
    };
    const init = await postKeepAlive(
        url,
        base,
        JSON.stringify({
            jsonrpc: '2.0',
            id: 0,
            method: 'initialize',
            params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'audit-it', version: '0' } },
        }),
        { agent, timeoutMs },
    );
    const sid = init.headers['mcp-session-id'];
    if (init.status !== 200 || !sid) throw new Error(`initialize: ${init.status} ${init.body.slice(0, 300)}`);
    const headers = { ...base, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': PROTOCOL_VERSION };
    const n = await postKeepAlive(url, headers, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), { agent, timeoutMs });
    if (n.status !== 202) throw new Error(`notifications/initialized: ${n.status} ${n.body}`);
    const session = {
        sid,
        headers,
        async rpc(method, params, id, { timeout = timeoutMs } = {}) {
            const r = await postKeepAlive(url, headers, JSON.stringify({ jsonrpc: '2.0', id, method, params }), { agent, timeoutMs: timeout });
            const msgs = messagesOf(r);
            const response = msgs.find((m) => m.id === id && ('result' in m || 'error' in m));
            return { status: r.status, response, raw: r };
        },
        /** A notification on the session: resolves {status, body}. */
        async notify(method, params) {
            const r = await postKeepAlive(url, headers, JSON.stringify({ jsonrpc: '2.0', method, params }), { agent, timeoutMs });
            return { status: r.status, body: r.body };
        },
        call(name, args, id, opts) {
            return session.rpc('tools/call', { name, arguments: args }, id, opts);
        },
    };
    return session;
}

/* ------------------------------------------------------------------------------------------
 * audit_events
 * ---------------------------------------------------------------------------------------- */

/** Rows of audit_events matching where (SQL with $1.. params), ordered by replica, seq. */
export async function auditRows(dbUrl, where = 'true', params = [], columns = '*') {
    return withPg(dbUrl, async (c) => (await c.query(`SELECT ${columns} FROM audit_events WHERE ${where} ORDER BY replica, seq`, params)).rows);
}

/** count(*) of audit_events matching where. */
export async function auditCount(dbUrl, where = 'true', params = []) {
    return withPg(dbUrl, async (c) => Number((await c.query(`SELECT count(*)::bigint AS n FROM audit_events WHERE ${where}`, params)).rows[0].n));
}

/** Waits until the audit row with this id exists; resolves it. */
export async function waitAuditRow(dbUrl, id, { timeoutMs = 10000 } = {}) {
    return waitFor(async () => (await auditRows(dbUrl, 'id = $1', [id]))[0], { timeoutMs, intervalMs: 50, message: `audit row ${id}` });
}

/** `sentinel-gate audit verify ...args` against dbUrl: {code, stdout, stderr, ms}. */
export function auditVerify(dbUrl, args = [], { timeoutMs = 120000 } = {}) {
    return runBin(['audit', 'verify', ...args], { env: { SG_DATABASE_URL: dbUrl, SG_LOG_LEVEL: 'info' }, timeoutMs });
}

/**
 * Checks one replica's rows (ordered by seq): seq is 1..N without gaps or duplicates and ts
 * never goes backwards. Returns a list of problems (empty when fine).
 */
export function chainProblems(rows) {
    const problems = [];
    for (let i = 0; i < rows.length; i++) {
        const seq = Number(rows[i].seq);
        if (seq !== i + 1) {
            problems.push(`row ${i}: seq ${seq}, expected ${i + 1}`);
            if (problems.length > 5) break;
        }
        if (i > 0 && new Date(rows[i].ts) < new Date(rows[i - 1].ts)) {
            problems.push(`seq ${seq}: ts ${rows[i].ts.toISOString()} before seq ${rows[i - 1].seq}'s ${rows[i - 1].ts.toISOString()}`);
            if (problems.length > 5) break;
        }
    }
    return problems;
}

/* ------------------------------------------------------------------------------------------
 * A failing upstream
 * ---------------------------------------------------------------------------------------- */

/**
 * Writes a minimal stdio MCP server (newline-delimited JSON-RPC) that answers initialize and
 * tools/list with two tools, `crash` (the process exits on a call) and `ok` (answers), and
 * returns its upstream definition.
 */
export function crashingUpstream(name = 'bad') {
    const dir = tempDir('crashing-');
    const file = path.join(dir, 'server.mjs');
    fs.writeFileSync(
        file,
        `import readline from 'node:readline';
const out = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
    let m;
    try { m = JSON.parse(line); } catch { return; }
    if (m.method === 'initialize') {
        out({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
              capabilities: { tools: {} }, serverInfo: { name: 'crashing', version: '0' } } });
    } else if (m.method === 'tools/list') {
        const schema = { type: 'object', properties: { x: { type: 'string' } } };
        out({ jsonrpc: '2.0', id: m.id, result: { tools: [
            { name: 'crash', inputSchema: schema, annotations: { readOnlyHint: true } },
            { name: 'ok', inputSchema: schema, annotations: { readOnlyHint: true } }] } });
    } else if (m.method === 'tools/call' && m.params.name === 'crash') {
        process.exit(3);
    } else if (m.method === 'tools/call') {
        out({ jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text: 'ok' }] } });
    } else if (m.id !== undefined && m.method !== undefined) {
        out({ jsonrpc: '2.0', id: m.id, result: {} });
    }
});
`,
    );
    return { name, command: process.execPath, args: [file] };
}
