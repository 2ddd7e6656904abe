// SPDX-License-Identifier: Apache-2.0
//
// Integration-test harness: starts the real things the gate talks to (redis-server, a
// throw-away PostgreSQL via ops/lib/pgcluster) and the sentinel-gate binary itself, all on
// 127.0.0.1 and free ports, and stops every one of them when the test file ends, also when a
// test fails or the process is interrupted.
//
// Environment:
//   SG_BIN          the built binary (ctest sets it); default <repo>/build/test/service/sentinel-gate
//   SG_SOURCE_DIR   the repository root (ctest sets it); default: two levels above this file
//   SG_TEST_TMPDIR  parent of this process' scratch directory (ops/test sets it and reaps
//                   whatever is left in it); default os.tmpdir()
//   SG_PGCLUSTER    override for ops/lib/pgcluster
//   SG_IT_VERBOSE=1 copy the gate's, Redis' and PostgreSQL's output to stderr as it comes
//   SG_IT_KEEP_TMP=1 keep the scratch directory (logs, datadirs) after the run
//
// Every process started here writes "<pid>\n<name>\n" into a *.pid file under the scratch
// directory, so ops/test can stop leftovers by id after a crash of the test process itself.

import { spawn, execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const SOURCE_DIR = path.resolve(process.env.SG_SOURCE_DIR || path.join(HERE, '..', '..'));
export const SG_BIN = path.resolve(
    SOURCE_DIR,
    process.env.SG_BIN || path.join('build', 'test', 'service', 'sentinel-gate'),
);
export const MIGRATIONS_DIR = path.join(SOURCE_DIR, 'migrations');
const PGCLUSTER = process.env.SG_PGCLUSTER || path.join(SOURCE_DIR, 'ops', 'lib', 'pgcluster');
const REDIS_SERVER = process.env.SG_REDIS_SERVER || 'redis-server';
const VERBOSE = process.env.SG_IT_VERBOSE === '1';
const KEEP_TMP = process.env.SG_IT_KEEP_TMP === '1';
const LOG_CAP = 8 * 1024 * 1024; // bytes of output kept per process (the tail)

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* ------------------------------------------------------------------------------------------
 * Scratch directory and cleanup registry
 * ---------------------------------------------------------------------------------------- */

let scratchRoot = null;

/** This process' scratch directory (created on first use, world-traversable for postgres). */
export function scratchDir() {
    if (scratchRoot === null) {
        const parent = process.env.SG_TEST_TMPDIR || os.tmpdir();
        fs.mkdirSync(parent, { recursive: true });
        scratchRoot = fs.mkdtempSync(path.join(parent, 'sg-it-'));
        fs.chmodSync(scratchRoot, 0o755);
        writePidFile(path.join(scratchRoot, 'node.pid'), process.pid, 'node');
    }
    return scratchRoot;
}

/** A new empty directory under the scratch directory. */
export function tempDir(prefix = 'd-') {
    const dir = fs.mkdtempSync(path.join(scratchDir(), prefix));
    fs.chmodSync(dir, 0o755);
    return dir;
}

function writePidFile(file, pid, name) {
    try {
        fs.writeFileSync(file, `${pid}\n${name}\n`);
    } catch {
        /* the scratch dir may already be gone at exit */
    }
}

/* Each entry: { name, stop: async () => void, stopSync: () => void }. Stopped in reverse order. */
const resources = [];

function register(resource) {
    resources.push(resource);
    return resource;
}

function unregister(resource) {
    const i = resources.indexOf(resource);
    if (i >= 0) resources.splice(i, 1);
}

/** Stops everything this process started, newest first. Safe to call more than once. */
export async function cleanup() {
    const errors = [];
    while (resources.length > 0) {
        const r = resources.pop();
        try {
            await r.stop();
        } catch (err) {
            errors.push(`${r.name}: ${err.message}`);
        }
    }
    removeScratch();
    if (errors.length > 0) throw new Error(`cleanup failed: ${errors.join('; ')}`);
}

function cleanupSync() {
    while (resources.length > 0) {
        const r = resources.pop();
        try {
            r.stopSync();
        } catch {
            /* best effort: the process is going away */
        }
    }
    removeScratch();
}

function removeScratch() {
    if (scratchRoot === null) return;
    if (KEEP_TMP) {
        process.stderr.write(`harness: kept scratch directory ${scratchRoot}\n`);
    } else {
        fs.rmSync(scratchRoot, { recursive: true, force: true });
    }
    scratchRoot = null;
}

// Registered at import time, so it attaches to the test file's root: it runs after every
// test of the file, passed or failed.
after(cleanup);
process.on('exit', cleanupSync);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
        cleanupSync();
        process.exit(128 + os.constants.signals[signal]);
    });
}

/* ------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------- */

const handedOut = new Set();

/** A TCP port on 127.0.0.1 that was free a moment ago (never the same one twice per process). */
export async function freePort() {
    for (let attempt = 0; attempt < 50; attempt++) {
        const port = await new Promise((resolve, reject) => {
            const srv = net.createServer();
            srv.unref();
            srv.on('error', reject);
            srv.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
                const { port: p } = srv.address();
                srv.close(() => resolve(p));
            });
        });
        if (!handedOut.has(port)) {
            handedOut.add(port);
            return port;
        }
    }
    throw new Error('freePort: no new free port after 50 attempts');
}

/**
 * Polls fn until it returns a truthy value (which is returned). Exceptions thrown by fn count
 * as "not yet" (the last one is reported on timeout), except one with `fatal: true`, which
 * ends the wait at once.
 */
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 100, message = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let lastError = null;
    let lastValue;
    for (;;) {
        try {
            lastValue = await fn();
            if (lastValue) return lastValue;
        } catch (err) {
            if (err && err.fatal) throw err;
            lastError = err;
        }
        if (Date.now() >= deadline) break;
        await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
    }
    const detail = lastError ? ` (last error: ${lastError.message})` : ` (last value: ${fmt(lastValue)})`;
    throw new Error(`waitFor: ${message} not met within ${timeoutMs} ms${detail}`);
}

function fmt(v) {
    try {
        const s = typeof v === 'string' ? v : JSON.stringify(v);
        return s === undefined ? String(v) : s.slice(0, 500);
    } catch {
        return String(v);
    }
}

/**
 * One HTTP/1.1 request to 127.0.0.1. Resolves {status, headers, body (string), json()}.
 * A response that arrives before the request body is fully sent (413 and friends) still
 * resolves; only a failure before any response rejects.
 */
export function request(url, { method = 'GET', headers = {}, body, timeoutMs = 5000 } = {}) {
    const u = new URL(url);
    if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost' && u.hostname !== '[::1]') {
        return Promise.reject(new Error(`request: refusing non-loopback host ${u.hostname}`));
    }
    return new Promise((resolve, reject) => {
        let settled = false;
        const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(
            typeof body === 'string' ? body : JSON.stringify(body),
        );
        const hdrs = { ...headers };
        const named = (n) => Object.keys(hdrs).some((h) => h.toLowerCase() === n);
        if (payload !== undefined && !named('content-length') && !named('transfer-encoding')) {
            hdrs['Content-Length'] = String(payload.length);
        }
        const req = http.request(
            { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: hdrs, agent: false },
            (res) => {
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                const finish = () => {
                    if (settled) return;
                    settled = true;
                    clearTimeout(timer);
                    const text = Buffer.concat(chunks).toString('utf8');
                    resolve({
                        status: res.statusCode,
                        headers: res.headers,
                        body: text,
                        json: () => JSON.parse(text),
                    });
                };
                res.on('end', finish);
                res.on('close', finish);
                res.on('error', finish);
            },
        );
        const timer = setTimeout(() => {
            if (settled) return;
            settled = true;
            req.destroy();
            reject(new Error(`request: ${method} ${url} timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        req.on('error', (err) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            reject(err);
        });
        if (payload !== undefined) req.write(payload, () => {});
        req.end();
    });
}

/** A child process' output, kept (the tail of it) for logs() and error messages. */
function captureOutput(proc, label) {
    const out = { text: '' };
    const add = (chunk) => {
        const s = chunk.toString('utf8');
        out.text += s;
        if (out.text.length > LOG_CAP) out.text = out.text.slice(out.text.length - LOG_CAP);
        if (VERBOSE) process.stderr.write(s.replace(/^(?=.)/gm, `[${label}] `));
    };
    proc.stdout?.on('data', add);
    proc.stderr?.on('data', add);
    return out;
}

/** Promise of {code, signal} when proc exits (already-exited processes resolve at once). */
function exitOf(proc) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
        return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
    }
    return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

function alive(proc) {
    return proc.exitCode === null && proc.signalCode === null;
}

/**
 * Sends signal, waits up to timeoutMs for the exit, then SIGKILLs.
 * Resolves {code, signal, ms, timedOut}.
 */
async function terminate(proc, signal = 'SIGTERM', timeoutMs = 10000) {
    const t0 = Date.now();
    if (!alive(proc)) return { ...(await exitOf(proc)), ms: 0, timedOut: false };
    const exited = exitOf(proc);
    proc.kill(signal);
    let timer;
    const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const r = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    if (r !== null) return { ...r, ms: Date.now() - t0, timedOut: false };
    proc.kill('SIGKILL');
    const k = await exitOf(proc);
    return { ...k, ms: Date.now() - t0, timedOut: true };
}

/** Environment for children: ours without any SG_* variable, plus extra (undefined deletes). */
function childEnv(extra = {}) {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
        if (!k.startsWith('SG_')) env[k] = v;
    }
    for (const [k, v] of Object.entries(extra)) {
        if (v === undefined || v === null) delete env[k];
        else env[k] = String(v);
    }
    return env;
}

function run(file, args, { env, timeoutMs = 30000, input } = {}) {
    return new Promise((resolve) => {
        const t0 = Date.now();
        const child = execFile(
            file,
            args,
            { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
            (err, stdout, stderr) => {
                resolve({
                    code: child.exitCode,
                    signal: child.signalCode,
                    timedOut: Boolean(err && err.killed),
                    stdout,
                    stderr,
                    ms: Date.now() - t0,
                });
            },
        );
        if (input !== undefined) child.stdin.end(input);
        else child.stdin.end();
    });
}

/* ------------------------------------------------------------------------------------------
 * Redis
 * ---------------------------------------------------------------------------------------- */

/** Resolves true when something on port answers a RESP PING (any reply, +PONG or -ERR). */
function redisPing(port, timeoutMs = 1000) {
    return new Promise((resolve) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        let buf = '';
        const done = (ok) => {
            sock.destroy();
            resolve(ok);
        };
        sock.setTimeout(timeoutMs, () => done(false));
        sock.on('error', () => done(false));
        sock.on('connect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
        sock.on('data', (d) => {
            buf += d.toString('latin1');
            if (buf.includes('\r\n')) done(buf.startsWith('+PONG') || buf.startsWith('-NOAUTH'));
        });
    });
}

/**
 * A private redis-server on 127.0.0.1 and a free port, no persistence, in a temp dir.
 * Returns {url, port, password, dir, logs(), stop(), kill(), restart(), running()}.
 * restart() comes back on the same port.
 */
export async function startRedis({ password, readyTimeoutMs = 10000 } = {}) {
    const port = await freePort();
    const dir = tempDir('redis-');
    const auth = password ? `:${encodeURIComponent(password)}@` : '';
    const url = `redis://${auth}127.0.0.1:${port}/0`;
    let proc = null;
    let out = { text: '' };

    const spawnIt = async () => {
        const args = [
            '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no',
            '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no', '--loglevel', 'notice',
        ];
        if (password) args.push('--requirepass', password);
        proc = spawn(REDIS_SERVER, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        proc.on('error', () => {}); // reported through exit / readiness below
        out = captureOutput(proc, `redis:${port}`);
        writePidFile(path.join(dir, 'redis.pid'), proc.pid, 'redis-server');
        const me = proc;
        try {
            await waitFor(
                async () => {
                    if (!alive(me)) {
                        throw Object.assign(new Error(`redis-server exited: ${out.text.slice(-2000)}`), { fatal: true });
                    }
                    return redisPing(port);
                },
                { timeoutMs: readyTimeoutMs, intervalMs: 50, message: `redis on ${port} ready` },
            );
        } catch (err) {
            await terminate(me, 'SIGKILL', 2000);
            throw err;
        }
    };

    const handle = {
        url,
        port,
        password,
        dir,
        logs: () => out.text,
        running: () => proc !== null && alive(proc),
        async stop() {
            if (proc) await terminate(proc, 'SIGTERM', 5000);
        },
        async kill() {
            if (proc) await terminate(proc, 'SIGKILL', 5000);
        },
        async restart() {
            await handle.stop();
            await spawnIt();
        },
    };
    const resource = register({
        name: `redis:${port}`,
        stop: () => handle.stop(),
        stopSync: () => {
            if (proc && alive(proc)) proc.kill('SIGKILL');
        },
    });
    try {
        await spawnIt();
    } catch (err) {
        unregister(resource);
        throw err;
    }
    return handle;
}

/* ------------------------------------------------------------------------------------------
 * PostgreSQL (ops/lib/pgcluster start <datadir> <port> | stop <datadir>)
 * ---------------------------------------------------------------------------------------- */

function pgclusterCommand() {
    try {
        fs.accessSync(PGCLUSTER, fs.constants.X_OK);
        return { file: PGCLUSTER, pre: [] };
    } catch {
        return { file: 'bash', pre: [PGCLUSTER] };
    }
}

/**
 * A throw-away PostgreSQL cluster on 127.0.0.1 and a free port (takes seconds: start one per
 * test file). Returns {url, port, datadir, stop(), restart(), running()}.
 */
export async function startPostgres({ timeoutMs = 120000 } = {}) {
    const port = await freePort();
    const datadir = path.join(tempDir('pg-'), 'data');
    const { file, pre } = pgclusterCommand();
    let running = false;
    let url = null;

    const start = async () => {
        const r = await run(file, [...pre, 'start', datadir, String(port)], { env: childEnv(), timeoutMs });
        if (r.code !== 0) {
            throw new Error(
                `pgcluster start ${datadir} ${port} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n` +
                    `${r.stdout}\n${r.stderr}`,
            );
        }
        const lines = r.stdout.trim().split('\n');
        const last = lines[lines.length - 1].trim();
        if (!/^postgres(ql)?:\/\//.test(last)) {
            throw new Error(`pgcluster start printed no URL as its last line:\n${r.stdout}\n${r.stderr}`);
        }
        running = true;
        url = last;
        if (VERBOSE) process.stderr.write(`[pg:${port}] started ${url}\n`);
    };
    const stop = async () => {
        if (!running) return;
        const r = await run(file, [...pre, 'stop', datadir], { env: childEnv(), timeoutMs: 60000 });
        if (r.code !== 0) throw new Error(`pgcluster stop ${datadir} failed (code ${r.code}):\n${r.stdout}\n${r.stderr}`);
        running = false;
    };

    const handle = {
        get url() {
            return url;
        },
        port,
        datadir,
        running: () => running,
        stop,
        async restart() {
            await stop();
            await start();
        },
    };
    const resource = register({
        name: `postgres:${port}`,
        stop,
        stopSync: () => {
            if (!running) return;
            try {
                execFileSync(file, [...pre, 'stop', datadir], { env: childEnv(), timeout: 30000, stdio: 'ignore' });
            } catch {
                /* best effort */
            }
            running = false;
        },
    });
    try {
        await start();
    } catch (err) {
        // A half-started cluster is still stopped by the registered resource.
        running = fs.existsSync(path.join(datadir, 'postmaster.pid'));
        throw err;
    }
    void resource;
    return handle;
}

/**
 * Creates another (empty) database in the cluster at baseUrl and returns its URL: cheaper than
 * a second cluster when a test needs an unmigrated database.
 */
export async function createDatabase(baseUrl, name = `db_${crypto.randomBytes(4).toString('hex')}`) {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`createDatabase: bad name ${name}`);
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: baseUrl });
    await client.connect();
    try {
        await client.query(`CREATE DATABASE ${name}`);
    } finally {
        await client.end();
    }
    const u = new URL(baseUrl);
    u.pathname = `/${name}`;
    return u.toString();
}

/** Runs fn(client) with a connected pg client to url, and closes it. */
export async function withPg(url, fn) {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
        return await fn(client);
    } finally {
        await client.end();
    }
}

/* ------------------------------------------------------------------------------------------
 * The binary
 * ---------------------------------------------------------------------------------------- */

/**
 * Runs `$SG_BIN ...args` to completion with only the given SG_* settings (plus
 * SG_MIGRATIONS_DIR). Resolves {code, signal, timedOut, stdout, stderr, ms}.
 */
export function runBin(args, { env = {}, timeoutMs = 30000 } = {}) {
    return run(SG_BIN, args, { env: childEnv({ SG_MIGRATIONS_DIR: MIGRATIONS_DIR, ...env }), timeoutMs });
}

/** `$SG_BIN migrate` against dbUrl; throws with the output unless it exits 0. */
export async function migrate(dbUrl, { env = {}, timeoutMs = 60000 } = {}) {
    const r = await runBin(['migrate'], { env: { SG_DATABASE_URL: dbUrl, SG_LOG_LEVEL: 'debug', ...env }, timeoutMs });
    if (r.code !== 0) {
        throw new Error(`sentinel-gate migrate exited ${r.code ?? r.signal}${r.timedOut ? ' (timed out)' : ''}:\n${r.stderr}${r.stdout}`);
    }
    return r;
}

let replicaSeq = 0;

/**
 * Starts `$SG_BIN <command> ...args` on 127.0.0.1:<free port> and waits until GET /healthz
 * answers 200. env entries override the defaults (undefined removes one).
 * Returns {url, port, adminToken, replicaId, spoolDir, proc, logs(), running(), exited,
 *          stop({timeoutMs}) -> {code, signal, ms, timedOut}, kill()}.
 */
export async function startGate({
    redisUrl,
    dbUrl,
    env = {},
    args = [],
    command = 'gate',
    readyTimeoutMs = 10000,
    waitHealthy = true,
} = {}) {
    try {
        fs.accessSync(SG_BIN, fs.constants.X_OK);
    } catch {
        throw new Error(`SG_BIN ${SG_BIN} is not an executable file (build first, or set SG_BIN)`);
    }
    const port = await freePort();
    const spoolDir = tempDir('spool-');
    const adminToken = crypto.randomBytes(24).toString('hex');
    const replicaId = `it-${process.pid}-${++replicaSeq}`;
    const fullEnv = childEnv({
        SG_LISTEN: `127.0.0.1:${port}`,
        SG_REDIS_URL: redisUrl,
        SG_DATABASE_URL: dbUrl,
        SG_REPLICA_ID: replicaId,
        SG_LOG_LEVEL: 'debug',
        SG_SPOOL_DIR: spoolDir,
        SG_ADMIN_TOKEN: adminToken,
        SG_MIGRATIONS_DIR: MIGRATIONS_DIR,
        ...env,
    });
    const proc = spawn(SG_BIN, [command, ...args], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.on('error', () => {});
    const out = captureOutput(proc, `gate:${port}`);
    writePidFile(path.join(spoolDir, 'gate.pid'), proc.pid, 'sentinel-gate');
    const url = `http://127.0.0.1:${port}`;

    const handle = {
        url,
        port,
        adminToken: fullEnv.SG_ADMIN_TOKEN,
        replicaId,
        spoolDir,
        proc,
        exited: exitOf(proc),
        logs: () => out.text,
        running: () => alive(proc),
        stop: ({ timeoutMs = 10000 } = {}) => terminate(proc, 'SIGTERM', timeoutMs),
        kill: () => terminate(proc, 'SIGKILL', 5000),
    };
    register({
        name: `gate:${port}`,
        stop: () => terminate(proc, 'SIGTERM', 10000),
        stopSync: () => {
            if (alive(proc)) proc.kill('SIGKILL');
        },
    });
    if (!waitHealthy) return handle;
    try {
        await waitFor(
            async () => {
                if (!alive(proc)) {
                    const r = await exitOf(proc);
                    throw Object.assign(new Error(`exited with ${r.code ?? r.signal}`), { fatal: true });
                }
                const r = await request(`${url}/healthz`, { timeoutMs: 1000 });
                return r.status === 200;
            },
            { timeoutMs: readyTimeoutMs, intervalMs: 50, message: `${command} on ${port} healthy` },
        );
    } catch (err) {
        await terminate(proc, 'SIGKILL', 2000);
        throw new Error(`sentinel-gate ${command} did not become healthy: ${err.message}\n--- output ---\n${out.text.slice(-8000)}`);
    }
    return handle;
}
