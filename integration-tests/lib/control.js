// SPDX-License-Identifier: Apache-2.0
//
// Helpers for the control-plane tests (control.test.js): the admin API, bootstrap test
// vectors, dumps of Redis and of the PostgreSQL tables the control plane writes, processes
// found by their command line, the Redis client connections of a process, a Redis MONITOR
// recorder, and "first successful call" probes with the official SDK client.
//
// Everything talks to 127.0.0.1 only; every loop is bounded.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

import { request, sleep, withPg } from './harness.js';
import { connectClient } from './mcp.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const VECTOR_DIR = path.resolve(HERE, '..', '..', 'service', 'tests', 'vectors', 'bootstrap');

/* ------------------------------------------------------------------------------------------
 * Admin API
 * ---------------------------------------------------------------------------------------- */

/**
 * A client of <base>/admin/api/v1 with the admin token. Each call resolves
 * {status, headers, body, json (parsed or null)}.
 */
export function adminApi(base, token) {
    const call = async (method, p, { body, headers = {}, timeoutMs = 10000, auth = `Bearer ${token}` } = {}) => {
        const h = { ...headers };
        if (auth !== null) h.Authorization = auth;
        // a JSON body by default; {'Content-Type': null} sends none
        if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
            h['Content-Type'] = 'application/json';
        }
        for (const [k, v] of Object.entries(h)) if (v === null || v === undefined) delete h[k];
        const r = await request(`${base}/admin/api/v1${p}`, { method, headers: h, body, timeoutMs });
        let json = null;
        try {
            json = JSON.parse(r.body);
        } catch {
            /* not JSON */
        }
        return { status: r.status, headers: r.headers, body: r.body, json };
    };
    return {
        base,
        token,
        call,
        get: (p, o) => call('GET', p, o),
        post: (p, body, o = {}) => call('POST', p, { ...o, body }),
        del: (p, o) => call('DELETE', p, o),
        /** POST /bootstrap; throws unless 200. Resolves the answer's JSON. */
        async bootstrap(payload) {
            const r = await call('POST', '/bootstrap', { body: payload });
            if (r.status !== 200) throw new Error(`bootstrap ${payload.tenant}: ${r.status} ${r.body}`);
            return r.json;
        },
    };
}

/** The api_key the bootstrap answer generated for identity name. */
export function keyOf(answer, name) {
    const id = answer.identities.find((i) => i.name === name);
    if (!id) throw new Error(`no identity ${name} in ${JSON.stringify(answer)}`);
    return id.api_key;
}

/* ------------------------------------------------------------------------------------------
 * Bootstrap test vectors (service/tests/vectors/bootstrap)
 * ---------------------------------------------------------------------------------------- */

export function loadVectors() {
    return fs
        .readdirSync(VECTOR_DIR)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => JSON.parse(fs.readFileSync(path.join(VECTOR_DIR, f), 'utf8')));
}

/** The exact bytes of a vector's payload, as the C unit test and schema.test.js build them. */
export function vectorBytes(v) {
    let bytes;
    if (v.payload !== undefined) bytes = Buffer.from(JSON.stringify(v.payload), 'utf8');
    else if (v.payload_text !== undefined) bytes = Buffer.from(v.payload_text, 'utf8');
    else bytes = Buffer.from(v.payload_base64, 'base64');
    if (v.pad_to !== undefined && bytes.length < v.pad_to) {
        bytes = Buffer.concat([bytes, Buffer.alloc(v.pad_to - bytes.length, 0x20)]);
    }
    return bytes;
}

/* ------------------------------------------------------------------------------------------
 * State dumps
 * ---------------------------------------------------------------------------------------- */

/**
 * Every key of a Redis database with its type and value (SCAN + TYPE + GET / HGETALL /
 * ZRANGE WITHSCORES / SMEMBERS / LRANGE), and whether it has a TTL. Sorted by key.
 */
export async function dumpRedis(redis) {
    const keys = [];
    let cursor = 0;
    for (let i = 0; i < 100000; i++) {
        const r = await redis.scan(cursor, { COUNT: 1000 });
        keys.push(...r.keys);
        cursor = Number(r.cursor);
        if (cursor === 0) break;
    }
    const out = {};
    for (const key of [...new Set(keys)].sort()) {
        const type = await redis.type(key);
        let value;
        if (type === 'string') value = await redis.get(key);
        else if (type === 'hash') value = Object.fromEntries(Object.entries(await redis.hGetAll(key)).sort());
        else if (type === 'zset') value = await redis.zRangeWithScores(key, 0, -1);
        else if (type === 'set') value = (await redis.sMembers(key)).sort();
        else if (type === 'list') value = await redis.lRange(key, 0, -1);
        else value = `<${type}>`;
        const ttl = await redis.pTTL(key);
        out[key] = { type, ttl: ttl >= 0 ? 'set' : 'none', value };
    }
    return out;
}

/** The rows of the tables the control plane writes (tenants, admin_actions), in key order. */
export async function dumpPg(dbUrl) {
    return withPg(dbUrl, async (c) => ({
        tenants: (await c.query('SELECT * FROM tenants ORDER BY tenant, version')).rows,
        admin_actions: (await c.query('SELECT * FROM admin_actions ORDER BY id')).rows,
    }));
}

/** The first difference between two dumps (JSON-wise), for assertion messages. */
export function firstDifference(a, b, where = '') {
    if (JSON.stringify(a) === JSON.stringify(b)) return null;
    if (a && b && typeof a === 'object' && typeof b === 'object') {
        for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
            const d = firstDifference(a[k], b[k], `${where}/${k}`);
            if (d) return d;
        }
    }
    const s = (x) => (x === undefined ? 'undefined' : JSON.stringify(x).slice(0, 400));
    return `${where || '/'}: ${s(a)} -> ${s(b)}`;
}

/* ------------------------------------------------------------------------------------------
 * Processes
 * ---------------------------------------------------------------------------------------- */

function cmdline(pid) {
    try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '').join(' ');
    } catch {
        return null;
    }
}

function isZombie(pid) {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
    } catch {
        return true;
    }
}

/**
 * `pgrep -f` without its regex: live (not zombie) processes whose command line contains
 * every one of the given substrings. Resolves [{pid, cmd}].
 */
export function pgrepF(...needles) {
    const out = [];
    for (const name of fs.readdirSync('/proc')) {
        if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue;
        const cmd = cmdline(name);
        if (cmd === null || !needles.every((n) => cmd.includes(n)) || isZombie(name)) continue;
        out.push({ pid: Number(name), cmd });
    }
    return out;
}

/** The parent pid of pid (null when gone). */
export function parentOf(pid) {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
        return null;
    }
}

/** True when pid descends from ancestor. */
export function descendsFrom(pid, ancestor) {
    let p = pid;
    for (let i = 0; i < 64 && p !== null && p > 1; i++) {
        p = parentOf(p);
        if (p === ancestor) return true;
    }
    return false;
}

/**
 * The local TCP ports of pid's connections to 127.0.0.1:remotePort (what Redis shows as the
 * client's addr), from /proc/<pid>/fd and /proc/net/tcp.
 */
export function clientPortsOf(pid, remotePort) {
    const inodes = new Set();
    let fds = [];
    try {
        fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
        return [];
    }
    for (const fd of fds) {
        try {
            const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
            if (m) inodes.add(m[1]);
        } catch {
            /* closed meanwhile */
        }
    }
    const ports = [];
    const rem = remotePort.toString(16).toUpperCase().padStart(4, '0');
    for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length < 10) continue;
        const [, local, remote] = f;
        if (remote.split(':')[1] === rem && inodes.has(f[9])) ports.push(parseInt(local.split(':')[1], 16));
    }
    return ports;
}

/* ------------------------------------------------------------------------------------------
 * Redis MONITOR
 * ---------------------------------------------------------------------------------------- */

const monitors = [];
after(() => {
    for (const m of monitors.splice(0)) m.stop();
});

function unquote(s) {
    return s.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e) => {
        if (e[0] === 'x' && e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
        return { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' }[e] ?? e;
    });
}

/**
 * Records every command Redis on port executes (MONITOR on a raw connection). Each entry:
 * {ms (Redis' wall clock, ms), port (the client's local port), args: [...]}. Resolves once
 * MONITOR is on.
 */
export function startMonitor(port, { password } = {}) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        const mon = {
            lines: [],
            stop() {
                sock.destroy();
            },
            /** Entries whose args start with the given ones (case-insensitive command). */
            find(...prefix) {
                return mon.lines.filter(
                    (l) => prefix.every((p, i) => (i === 0 ? String(l.args[0]).toUpperCase() === p.toUpperCase() : l.args[i] === p)),
                );
            },
        };
        let buf = '';
        let on = false;
        sock.setEncoding('latin1');
        sock.on('error', (err) => {
            if (!on) reject(err);
        });
        sock.on('connect', () => {
            if (password) sock.write(`AUTH ${password}\r\n`);
            sock.write('MONITOR\r\n');
        });
        sock.on('data', (d) => {
            buf += d;
            let i;
            while ((i = buf.indexOf('\r\n')) >= 0) {
                const line = buf.slice(0, i);
                buf = buf.slice(i + 2);
                if (!on) {
                    if (line === '+OK') {
                        on = true;
                        monitors.push(mon);
                        resolve(mon);
                    }
                    continue;
                }
                const m = /^\+(\d+)\.(\d+) \[\d+ [^\]]*?:(\d+)\] (.*)$/.exec(line);
                if (!m) continue;
                const args = [...m[4].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => unquote(x[1]));
                mon.lines.push({ ms: Number(m[1]) * 1000 + Number(m[2].padEnd(6, '0')) / 1000, port: Number(m[3]), args });
            }
        });
    });
}

/* ------------------------------------------------------------------------------------------
 * MCP probes
 * ---------------------------------------------------------------------------------------- */

const textOf = (result) => (result?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');

/**
 * Tries, as fast as it can (every intervalMs), to connect the official SDK client to gate with
 * key and to call tool with args until the result's text contains expect. Resolves
 * {ms (since t0), client, connectMs, attempts, lastError}; rejects after timeoutMs.
 */
export async function firstSuccessfulCall(gate, key, { tool, args, expect, t0 = Date.now(), timeoutMs = 15000, intervalMs = 10 }) {
    const deadline = Date.now() + timeoutMs;
    let client = null;
    let connectMs = null;
    let attempts = 0;
    let lastError = null;
    const trace = []; // [start ms since t0, what, took ms, outcome]
    while (Date.now() < deadline) {
        attempts++;
        const s = Date.now();
        const what = client === null ? 'connect+call' : 'call';
        try {
            if (client === null) {
                client = await connectClient(gate, key);
                connectMs = Date.now() - t0;
            }
            const r = await client.client.callTool({ name: tool, arguments: args }, undefined, { timeout: 5000 });
            if (!r.isError && textOf(r).includes(expect)) {
                trace.push([s - t0, what, Date.now() - s, 'ok']);
                return { ms: Date.now() - t0, connectMs, client, attempts, lastError, trace };
            }
            lastError = new Error(`result ${JSON.stringify(r).slice(0, 300)}`);
        } catch (err) {
            lastError = err;
        }
        trace.push([s - t0, what, Date.now() - s, String(lastError?.message).slice(0, 60)]);
        await sleep(intervalMs);
    }
    throw new Error(`no successful ${tool} on ${gate.url} within ${timeoutMs} ms after ${attempts} attempts: ${lastError?.message}`);
}

/** Polls /readyz every intervalMs from now on; .first200After(ms) tells when it was first 200 at or after ms. */
export function watchReadyz(gate, { intervalMs = 10, maxMs = 60000 } = {}) {
    const samples = [];
    let stopped = false;
    const until = Date.now() + maxMs;
    const loop = (async () => {
        while (!stopped && Date.now() < until) {
            try {
                const r = await request(`${gate.url}/readyz`, { timeoutMs: 2000 });
                samples.push({ ms: Date.now(), status: r.status, body: r.body });
            } catch (err) {
                samples.push({ ms: Date.now(), status: 0, body: err.message });
            }
            await sleep(intervalMs);
        }
    })();
    return {
        samples,
        async stop() {
            stopped = true;
            await loop;
        },
        /** Time of the first 200 that follows a sample naming `needle` as missing (the tenant was seen). */
        readyAfterSeen(needle) {
            let seen = false;
            for (const s of samples) {
                if (s.status !== 200 && s.body.includes(needle)) seen = true;
                else if (seen && s.status === 200) return s.ms;
            }
            return null;
        },
    };
}

export { textOf };

/**
 * Sends head (request line and headers, CRLFs included) and then bodyPrefix on a raw
 * connection to 127.0.0.1:port without sending the rest of the body the headers announce, and
 * resolves {status, text} of what comes back before the server closes or timeoutMs passes.
 */
export function rawHttp(port, head, bodyPrefix = Buffer.alloc(0), { timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        let text = '';
        const done = () => {
            clearTimeout(timer);
            sock.destroy();
            const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
            resolve({ status: m ? Number(m[1]) : null, text });
        };
        const timer = setTimeout(done, timeoutMs);
        sock.on('error', (err) => {
            if (text === '') {
                clearTimeout(timer);
                reject(err);
            } else done();
        });
        sock.on('connect', () => {
            sock.write(head);
            if (bodyPrefix.length > 0) sock.write(bodyPrefix);
        });
        sock.on('data', (d) => {
            text += d.toString('latin1');
            if (/\r\n\r\n/.test(text)) {
                const cl = /\r\ncontent-length: *(\d+)/i.exec(text);
                const bodyStart = text.indexOf('\r\n\r\n') + 4;
                if (cl && text.length - bodyStart >= Number(cl[1])) done();
            }
        });
        sock.on('end', done);
    });
}
