// SPDX-License-Identifier: Apache-2.0
//
// MCP helpers for the relay tests: tenant configuration in Redis, SDK clients and raw
// Streamable HTTP requests against a gate replica, SSE parsing, and the upstream servers
// (server-everything over stdio, recorded through a tap, and over Streamable HTTP).
//
// Everything here talks to 127.0.0.1 only; every wait is bounded. Processes started here
// are stopped when the test file ends (and killed on exit), and leave a *.pid file in the
// harness' scratch directory like the harness' own processes do (named "node", a kind
// ops/test reaps).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after } from 'node:test';

import { createClient } from 'redis';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { freePort, request, tempDir, waitFor } from './harness.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODULES = path.resolve(HERE, '..', 'node_modules');

export const EVERYTHING_BIN = path.join(MODULES, '.bin', 'mcp-server-everything');
export const FILESYSTEM_BIN = path.join(MODULES, '.bin', 'mcp-server-filesystem');
const EVERYTHING_MAIN = path.join(MODULES, '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');

export const PROTOCOL_VERSION = '2025-11-25';

/* Clients opened by the helpers below, closed when the test file ends. (A hook registered from
 * inside a before() or a test would attach to that hook or test, so it is registered here, at
 * import time, on the file's root.) */
const closers = [];
after(async () => {
    while (closers.length > 0) {
        try {
            await closers.pop()();
        } catch {
            /* already closed */
        }
    }
});

/* ------------------------------------------------------------------------------------------
 * Keys and tenant configuration
 * ---------------------------------------------------------------------------------------- */

export const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');

/** A fresh random API key. */
export const newKey = (tag = 'k') => `sg_test_${tag}_${crypto.randomBytes(16).toString('hex')}`;

/** A connected redis client (closed when the test file ends). */
export async function redisClient(url) {
    const c = createClient({ url, socket: { connectTimeout: 5000, reconnectStrategy: false } });
    c.on('error', () => {});
    await c.connect();
    closers.push(() => c.disconnect());
    return c;
}

/**
 * Stores the tenant document the way the control plane does (config first, then the version in
 * sg:tenants, then the event). identities: [{name, keys: [plain key, ...], roles?}].
 */
export async function writeTenant(redis, { tenant, version, identities, upstreams, allowedOrigins = [], extra = {} }) {
    // The relay tests exercise transport mechanics, not policy: the permissive profile allows
    // every call (the policy tests use their own tenants).
    const doc = {
        tenant,
        version,
        profile: 'permissive',
        identities: identities.map((id) => ({
            name: id.name,
            roles: id.roles ?? ['agent'],
            keys: id.keys.map((k) => ({ sha256: sha256hex(k), expires_ms: 0 })),
        })),
        upstreams,
        allowed_origins: allowedOrigins,
        ...extra,
    };
    await redis.set(`sg:{${tenant}}:config`, JSON.stringify(doc));
    await redis.hSet('sg:tenants', tenant, String(version));
    await redis.publish('sg:events', `config ${tenant} ${version}`);
    return doc;
}

/** The last n characters of a gate's log without its debug lines (the pool's polling drowns the rest). */
export function logTail(gate, n = 6000) {
    return gate
        .logs()
        .split('\n')
        .filter((l) => !l.includes('level=debug'))
        .join('\n')
        .slice(-n);
}

/** Polls /readyz until it answers 200; returns its JSON. */
export async function waitReady(gate, { timeoutMs = 30000 } = {}) {
    let last = null;
    try {
        return await waitFor(
            async () => {
                const r = await request(`${gate.url}/readyz`, { timeoutMs: 2000 });
                last = r.body;
                return r.status === 200 ? r.json() : false;
            },
            { timeoutMs, intervalMs: 100, message: `${gate.url}/readyz 200` },
        );
    } catch (err) {
        err.message += `\nlast /readyz: ${last}\n--- gate log tail ---\n${logTail(gate, 4000)}`;
        throw err;
    }
}

/* ------------------------------------------------------------------------------------------
 * Upstream definitions
 * ---------------------------------------------------------------------------------------- */

/**
 * A stdio upstream whose stdin (everything the gate sends it) is also appended to a tap file:
 * /bin/sh -c 'tee -a "$0.$PPID" | exec "$@"' tapBase command args...
 * "$PPID" of that shell is the gate replica, so each replica gets its own file.
 * The gate starts it in its own process group, so killing the group kills the whole pipeline.
 */
export function tapped(tapBase, command, args) {
    return { command: '/bin/sh', args: ['-c', 'tee -a "$0.$PPID" | exec "$@"', tapBase, command, ...args] };
}

/**
 * The JSON-RPC messages a gate replica wrote to a tapped upstream (every line of its tap file:
 * each replica's children write <tapBase>.<gate pid>, restarts append).
 */
export function readTap(tapBase, gate) {
    let text = '';
    try {
        text = fs.readFileSync(`${tapBase}.${gate.proc.pid}`, 'utf8');
    } catch {
        return [];
    }
    const out = [];
    for (const line of text.split('\n')) {
        if (line.trim() === '') continue;
        try {
            out.push(JSON.parse(line));
        } catch {
            out.push({ unparsable: line });
        }
    }
    return out;
}

/* ------------------------------------------------------------------------------------------
 * Processes started here
 * ---------------------------------------------------------------------------------------- */

const mine = new Set();
process.on('exit', () => {
    for (const p of mine) {
        try {
            p.kill('SIGKILL');
        } catch {
            /* gone */
        }
    }
});
after(async () => {
    await Promise.all(
        [...mine].map(
            (p) =>
                new Promise((resolve) => {
                    if (p.exitCode !== null || p.signalCode !== null) return resolve();
                    const t = setTimeout(() => {
                        try {
                            p.kill('SIGKILL');
                        } catch {
                            /* gone */
                        }
                        resolve();
                    }, 3000);
                    p.once('exit', () => {
                        clearTimeout(t);
                        resolve();
                    });
                    p.kill('SIGTERM');
                }),
        ),
    );
    mine.clear();
});

function portOpen(port) {
    return new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.setTimeout(1000, () => {
            s.destroy();
            resolve(false);
        });
        s.on('error', () => resolve(false));
        s.on('connect', () => {
            s.destroy();
            resolve(true);
        });
    });
}

/**
 * server-everything over Streamable HTTP on 127.0.0.1:<free port> (a preload makes its
 * express server bind to loopback only). Returns {url, port, proc, logs()}.
 */
export async function startEverythingHttp() {
    const dir = tempDir('everything-http-');
    const preload = path.join(dir, 'loopback.mjs');
    fs.writeFileSync(
        preload,
        `import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^[0-9]+$/.test(args[0]))) {
        const cb = args.find((a) => typeof a === 'function');
        return listen.call(this, { port: Number(args[0]), host: '127.0.0.1' }, cb);
    }
    return listen.apply(this, args);
};
`,
    );
    const port = await freePort();
    const proc = spawn(process.execPath, ['--import', pathToFileURL(preload).href, EVERYTHING_MAIN, 'streamableHttp'], {
        cwd: dir,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.on('error', () => {});
    mine.add(proc);
    fs.writeFileSync(path.join(dir, 'everything.pid'), `${proc.pid}\nnode\n`);
    let out = '';
    const add = (c) => {
        out += c.toString('utf8');
        if (out.length > 1 << 20) out = out.slice(-(1 << 19));
    };
    proc.stdout.on('data', add);
    proc.stderr.on('data', add);
    await waitFor(
        async () => {
            if (proc.exitCode !== null || proc.signalCode !== null) {
                throw Object.assign(new Error(`server-everything exited: ${out}`), { fatal: true });
            }
            return portOpen(port);
        },
        { timeoutMs: 15000, intervalMs: 100, message: `server-everything streamableHttp on ${port}` },
    );
    return { url: `http://127.0.0.1:${port}/mcp`, port, proc, logs: () => out };
}

/** Pids of the stdio upstreams a gate spawned for tenant/upstream, in order, from its log. */
export function spawnedPids(gate, tenant, upstream) {
    const pids = [];
    const re = /spawned upstream pid (\d+)/;
    for (const line of gate.logs().split('\n')) {
        const m = re.exec(line);
        if (m && line.includes(`${tenant}/${upstream}`)) pids.push(Number(m[1]));
    }
    return pids;
}

/** True while /proc/<pid> exists and is not a zombie. */
export function processAlive(pid) {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
        return state !== 'Z';
    } catch {
        return false;
    }
}

/** True when /proc/<pid> exists at all (a zombie counts). */
export function processExists(pid) {
    return fs.existsSync(`/proc/${pid}`);
}

/* ------------------------------------------------------------------------------------------
 * SDK client
 * ---------------------------------------------------------------------------------------- */

/**
 * An SDK client connected to gate's /mcp with the given key. Every message the client
 * receives is also recorded in `received` (in order), for checks the SDK would hide.
 * Returns {client, transport, received, errors, sessionId, close()}.
 */
export async function connectClient(gate, key, { name = 'it-client', capabilities = {} } = {}) {
    const transport = new StreamableHTTPClientTransport(new URL(`${gate.url}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${key}` } },
        reconnectionOptions: { maxReconnectionDelay: 1000, initialReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 2 },
    });
    const client = new Client({ name, version: '0.0.1' }, { capabilities });
    const errors = [];
    client.onerror = (e) => errors.push(e);
    const received = [];
    await client.connect(transport);
    const inner = transport.onmessage;
    transport.onmessage = (msg, extra) => {
        received.push(msg);
        inner?.(msg, extra);
    };
    const handle = {
        client,
        transport,
        received,
        errors,
        get sessionId() {
            return transport.sessionId;
        },
        async close() {
            try {
                await client.close();
            } catch {
                /* closed */
            }
        },
    };
    closers.push(() => handle.close());
    return handle;
}

/* ------------------------------------------------------------------------------------------
 * Raw Streamable HTTP
 * ---------------------------------------------------------------------------------------- */

/** JSON-RPC messages in an SSE body (events without data, and comments, skipped). */
export function parseSse(text) {
    const msgs = [];
    for (const block of text.split(/\r\n\r\n|\n\n|\r\r/)) {
        const data = [];
        let event = 'message';
        for (const line of block.split(/\r\n|\n|\r/)) {
            if (line.startsWith(':') || line === '') continue;
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            let value = i < 0 ? '' : line.slice(i + 1);
            if (value.startsWith(' ')) value = value.slice(1);
            if (field === 'data') data.push(value);
            else if (field === 'event') event = value;
        }
        if (data.length === 0 || event !== 'message') continue;
        const joined = data.join('\n');
        if (joined === '') continue;
        msgs.push(JSON.parse(joined));
    }
    return msgs;
}

/**
 * A raw /mcp peer: post(message | string, {headers, session, key}) resolves
 * {status, headers, body, messages, response} where messages are the JSON-RPC messages of a
 * JSON or SSE answer and response is the one with the request's id (if any).
 */
export function rawPeer(gate, key, { session = null, protocolVersion = PROTOCOL_VERSION } = {}) {
    const peer = {
        gate,
        key,
        session,
        protocolVersion,
        headers(extra = {}) {
            const h = {
                Accept: 'application/json, text/event-stream',
                'Content-Type': 'application/json',
            };
            if (peer.key !== null) h.Authorization = `Bearer ${peer.key}`;
            if (peer.session !== null) h['Mcp-Session-Id'] = peer.session;
            if (peer.protocolVersion !== null && peer.session !== null) h['MCP-Protocol-Version'] = peer.protocolVersion;
            return { ...h, ...extra };
        },
        async post(message, { headers = {}, timeoutMs = 15000, method = 'POST' } = {}) {
            const body = typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message);
            const hdrs = peer.headers(headers);
            for (const [k, v] of Object.entries(hdrs)) if (v === undefined) delete hdrs[k];
            const r = await request(`${gate.url}/mcp`, { method, headers: hdrs, body, timeoutMs });
            const ctype = String(r.headers['content-type'] || '');
            let messages = [];
            if (ctype.startsWith('text/event-stream')) messages = parseSse(r.body);
            else if (ctype.startsWith('application/json') && r.body !== '') messages = [JSON.parse(r.body)];
            const id = typeof message === 'object' && message !== null && !Buffer.isBuffer(message) ? message.id : undefined;
            const response = messages.find((m) => id !== undefined && m.id === id && ('result' in m || 'error' in m)) ??
                messages.find((m) => 'result' in m || 'error' in m);
            return { ...r, messages, response };
        },
        async initialize() {
            const r = await peer.post({
                jsonrpc: '2.0',
                id: 0,
                method: 'initialize',
                params: { protocolVersion: peer.protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
            });
            if (r.status !== 200 || !r.headers['mcp-session-id']) {
                throw new Error(`initialize: ${r.status} ${r.body}`);
            }
            peer.session = r.headers['mcp-session-id'];
            const n = await peer.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
            if (n.status !== 202) throw new Error(`notifications/initialized: ${n.status} ${n.body}`);
            return r;
        },
    };
    return peer;
}

let rawSeq = 1000;
/** A JSON-RPC request object with a fresh id. */
export const rpc = (method, params) => ({ jsonrpc: '2.0', id: ++rawSeq, method, ...(params === undefined ? {} : { params }) });

/**
 * Opens a streaming request (GET /mcp, or a POST whose answer is an SSE stream) and collects its
 * JSON-RPC messages as they arrive. Returns {status, headers, messages, text, ended, waitFor(pred,
 * ms), close()} once the response headers are in.
 */
export function openStream(url, { method = 'GET', headers = {}, body, timeoutMs = 5000 } = {}) {
    const u = new URL(url);
    if (u.hostname !== '127.0.0.1') return Promise.reject(new Error(`openStream: refusing ${u.hostname}`));
    return new Promise((resolve, reject) => {
        const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
        const hdrs = { ...headers };
        if (payload) hdrs['Content-Length'] = String(payload.length);
        const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method, headers: hdrs, agent: false }, (res) => {
            clearTimeout(timer);
            const stream = {
                status: res.statusCode,
                headers: res.headers,
                messages: [],
                text: '',
                ended: false,
                async waitFor(pred, ms = 10000, what = 'stream message') {
                    return waitFor(() => stream.messages.find(pred), { timeoutMs: ms, intervalMs: 50, message: what });
                },
                close() {
                    req.destroy();
                    res.destroy();
                },
            };
            let pending = '';
            res.on('data', (chunk) => {
                const s = chunk.toString('utf8');
                stream.text += s;
                pending += s;
                const parts = pending.split(/\r\n\r\n|\n\n/);
                pending = parts.pop();
                for (const part of parts) {
                    try {
                        stream.messages.push(...parseSse(`${part}\n\n`));
                    } catch {
                        stream.messages.push({ unparsable: part });
                    }
                }
            });
            const end = () => {
                stream.ended = true;
            };
            res.on('end', end);
            res.on('close', end);
            res.on('error', end);
            resolve(stream);
        });
        const timer = setTimeout(() => {
            req.destroy();
            reject(new Error(`openStream: ${method} ${url}: no response headers within ${timeoutMs} ms`));
        }, timeoutMs);
        req.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
        });
        if (payload) req.write(payload);
        req.end();
    });
}

