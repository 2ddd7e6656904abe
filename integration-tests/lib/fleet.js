// SPDX-License-Identifier: Apache-2.0
//
// The fleet topology of DESIGN §1 on loopback, for tests that need more than one replica
// behind a real load balancer:
//
//     agents ──▶ haproxy ──/mcp (round robin)──▶ gate replica × N ──▶ stdio upstreams
//                   │                                │
//                   └──/admin──▶ control plane        ├── Redis (one)
//                                                     └── PostgreSQL (one, migrated)
//
// Everything listens on 127.0.0.1 and a free port. Redis, PostgreSQL and the sentinel-gate
// processes come from the harness (and are stopped by it); haproxy is started here, from the
// template below written out at run time, and stopped here when the test file ends (also on
// failure or interruption). haproxy leaves "<pid>\nhaproxy\n" in a haproxy.pid file under the
// harness' scratch directory (under $SG_TEST_TMPDIR when set), like the harness' processes do.
//
// Also here, for measuring a fleet under load: startAgents (official SDK clients calling a tool
// in a loop from a worker thread, each call stamped with its own send and answer times) and
// respConnection (a bare Redis connection that writes a command the moment it is given, for
// "ops typed SET at t0" measurements).
//
// Load-balancer decisions (ops/haproxy.cfg, the compose file's copy, makes the same ones;
// compose.test.js checks that they agree):
//   * /admin and /admin/... go to the control plane; everything else (/mcp, /healthz,
//     /.well-known/...) to the gate replicas, `balance roundrobin`: sessions are signed tokens
//     that every replica validates, so there is no stickiness (DESIGN §1).
//   * Health checks use GET /healthz, not /readyz: a replica that cannot confirm the kill
//     switches (Redis down) is not ready, yet it must keep answering so that agents get the
//     gateway's -31007 refusals and not the load balancer's 503s. A replica that is down
//     (refused connection, no /healthz) is taken out after `fall` failed checks.
//   * `retries 2` + `option redispatch 1`: a request whose connection to a replica fails
//     (replica just killed, not yet marked down) is sent to another replica. Requests that
//     reached a replica are never replayed (`retry-on` stays at its default, conn-failure):
//     a tools/call may have side effects.
//   * Client and server timeouts are longer than the longest call the gate allows (an
//     upstream's timeout_ms is up to one hour, enforced by the gate): the proxy must not cut a
//     call short. Idle keep-alive connections and slow request headers are still cut quickly.

import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after } from 'node:test';

import {
    freePort,
    migrate,
    request,
    runBin,
    scratchDir,
    startGate,
    startPostgres,
    startRedis,
    tempDir,
    waitFor,
} from './harness.js';
import { redisClient, waitReady } from './mcp.js';

const HAPROXY = process.env.SG_HAPROXY || 'haproxy';
const VERBOSE = process.env.SG_IT_VERBOSE === '1';
const LOG_CAP = 4 * 1024 * 1024;

/* ------------------------------------------------------------------------------------------
 * Cleanup of what is started here (haproxy). The harness stops its own processes.
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

// Registered at import time, so the hook belongs to the test file's root.
after(async () => {
    await Promise.all([...procs].map((p) => terminate(p)));
    procs.clear();
});
process.on('exit', () => {
    for (const p of procs) {
        if (alive(p)) {
            try {
                p.kill('SIGKILL');
            } catch {
                /* gone */
            }
        }
    }
});

/* ------------------------------------------------------------------------------------------
 * haproxy
 * ---------------------------------------------------------------------------------------- */

/** Gate replicas in the fleet (and in docker-compose.yml). */
export const DEFAULT_REPLICAS = 3;

/** The load-balancer policy shared by this harness and ops/haproxy.cfg (see the top comment). */
export const LB_POLICY = Object.freeze({
    balance: 'roundrobin',
    healthCheck: 'GET /healthz',
    adminPaths: ['/admin', '/admin/'],
    retries: 2,
    redispatch: 1,
});

const TEMPLATE = `# Written by integration-tests/lib/fleet.js at run time; do not edit.
global
    log stdout format raw local0 notice
    maxconn 4096
    stats socket {{STATS_SOCKET}} mode 600 level admin
    hard-stop-after 5s

defaults
    mode http
    log global
    option dontlognull
    timeout connect 1s
    timeout client 3660s
    timeout server 3660s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    retries {{RETRIES}}
    option redispatch {{REDISPATCH}}

frontend agents
    bind 127.0.0.1:{{PORT}}
    option forwardfor
    acl is_admin path {{ADMIN_EXACT}}
    acl is_admin path_beg {{ADMIN_PREFIX}}
    use_backend control if is_admin
    default_backend gates

backend gates
    balance {{BALANCE}}
    option httpchk {{HEALTH_CHECK}}
    http-check expect status 200
    default-server check inter {{CHECK_MS}}ms fastinter {{CHECK_MS}}ms downinter {{CHECK_MS}}ms fall {{FALL}} rise {{RISE}}
{{SERVERS}}

backend control
    option httpchk {{HEALTH_CHECK}}
    http-check expect status 200
    server control 127.0.0.1:{{CONTROL_PORT}} check inter {{CHECK_MS}}ms fall {{FALL}} rise {{RISE}}
`;

/**
 * The haproxy configuration of the fleet: {port, statsSocket, gates: [{name, port}],
 * controlPort, checkMs, fall, rise} filled into the template.
 */
export function haproxyConfig({ port, statsSocket, gates, controlPort, checkMs = 200, fall = 2, rise = 2 }) {
    const values = {
        PORT: port,
        STATS_SOCKET: statsSocket,
        RETRIES: LB_POLICY.retries,
        REDISPATCH: LB_POLICY.redispatch,
        ADMIN_EXACT: LB_POLICY.adminPaths[0],
        ADMIN_PREFIX: LB_POLICY.adminPaths[1],
        BALANCE: LB_POLICY.balance,
        HEALTH_CHECK: LB_POLICY.healthCheck,
        CHECK_MS: checkMs,
        FALL: fall,
        RISE: rise,
        CONTROL_PORT: controlPort,
        SERVERS: gates.map((g) => `    server ${g.name} 127.0.0.1:${g.port}`).join('\n'),
    };
    return TEMPLATE.replace(/\{\{([A-Z_]+)\}\}/g, (_, k) => {
        if (!(k in values) || values[k] === undefined) throw new Error(`haproxyConfig: no value for ${k}`);
        return String(values[k]);
    });
}

function runHaproxyCheck(cfgFile) {
    return new Promise((resolve) => {
        execFile(HAPROXY, ['-c', '-f', cfgFile], { timeout: 10000, encoding: 'utf8' }, (err, stdout, stderr) => {
            resolve({ ok: !err, output: `${stdout}${stderr}` });
        });
    });
}

/** Sends one command to haproxy's stats socket and resolves its whole answer. */
export function haproxyCommand(socketPath, command, timeoutMs = 2000) {
    return new Promise((resolve, reject) => {
        const sock = net.connect(socketPath);
        let buf = '';
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new Error(`haproxy socket: '${command}' timed out`));
        }, timeoutMs);
        sock.on('connect', () => sock.write(`${command}\n`));
        sock.on('data', (d) => {
            buf += d.toString('utf8');
        });
        sock.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
        });
        sock.on('close', () => {
            clearTimeout(timer);
            resolve(buf);
        });
    });
}

/**
 * haproxy (from Debian) in the foreground with the fleet configuration. Resolves
 * {url, port, cfgFile, statsSocket, proc, logs(), running(), stats(), servers(), stop()}
 * once the frontend accepts connections. servers() maps "<backend>/<server>" to haproxy's
 * status ("UP", "DOWN", "UP 1/2", ...).
 */
export async function startHaproxy({ gates, controlPort, checkMs = 200, fall = 2, rise = 2 }) {
    const dir = tempDir('haproxy-');
    const port = await freePort();
    const statsSocket = path.join(dir, 'admin.sock');
    const cfgFile = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(cfgFile, haproxyConfig({ port, statsSocket, gates, controlPort, checkMs, fall, rise }));
    const check = await runHaproxyCheck(cfgFile);
    if (!check.ok) throw new Error(`haproxy -c rejected ${cfgFile}:\n${check.output}`);

    // -db: stay in the foreground, a child of this process; -Ws is not used (no master).
    const proc = spawn(HAPROXY, ['-db', '-f', cfgFile], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.on('error', () => {});
    procs.add(proc);
    fs.writeFileSync(path.join(dir, 'haproxy.pid'), `${proc.pid}\nhaproxy\n`);
    let out = '';
    const add = (c) => {
        const s = c.toString('utf8');
        out += s;
        if (out.length > LOG_CAP) out = out.slice(out.length - LOG_CAP);
        if (VERBOSE) process.stderr.write(s.replace(/^(?=.)/gm, `[haproxy:${port}] `));
    };
    proc.stdout.on('data', add);
    proc.stderr.on('data', add);

    const handle = {
        url: `http://127.0.0.1:${port}`,
        port,
        cfgFile,
        statsSocket,
        proc,
        logs: () => out,
        running: () => alive(proc),
        stop: () => terminate(proc),
        /** `show stat` as rows of objects keyed by the CSV header. */
        async stats() {
            const text = await haproxyCommand(statsSocket, 'show stat');
            const lines = text.split('\n').filter((l) => l.trim() !== '');
            const header = lines.shift().replace(/^#\s*/, '').split(',');
            return lines.map((l) => {
                const cells = l.split(',');
                return Object.fromEntries(header.map((h, i) => [h, cells[i]]));
            });
        },
        async servers() {
            const rows = await handle.stats();
            const m = {};
            for (const r of rows) {
                if (r.svname !== 'FRONTEND' && r.svname !== 'BACKEND') m[`${r.pxname}/${r.svname}`] = r.status;
            }
            return m;
        },
    };
    await waitFor(
        async () => {
            if (!alive(proc)) throw Object.assign(new Error(`haproxy exited: ${out.slice(-2000)}`), { fatal: true });
            return fs.existsSync(statsSocket) && (await portOpen(port));
        },
        { timeoutMs: 10000, intervalMs: 50, message: `haproxy on ${port}` },
    );
    return handle;
}

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

/* ------------------------------------------------------------------------------------------
 * The fleet
 * ---------------------------------------------------------------------------------------- */

/**
 * Starts Redis, PostgreSQL (migrated), `replicas` gate replicas, the control plane and haproxy
 * in front of them. `seed(redis)` (optional) runs with a connected Redis client before the
 * replicas start, to write tenant configurations; the fleet is returned once every replica's
 * /readyz is 200 and haproxy sees every server UP.
 *
 * Returns {
 *   redisServer, pg, redisUrl, dbUrl, redis (client), adminToken,
 *   gates: [{name, url, port, proc, logs(), kill(), stop(), ...harness gate handle}],
 *   control, lb (startHaproxy handle), url (the load balancer's base URL),
 *   killswitch(args) -> runs `sentinel-gate killswitch ...args` with SG_REDIS_URL,
 *   waitLbServers(pred, opts) -> waits until pred(lb.servers()) holds,
 * }
 */
export async function startFleet({
    replicas = DEFAULT_REPLICAS,
    seed,
    gateEnv = {},
    controlEnv = {},
    checkMs = 200,
    fall = 2,
    rise = 2,
    readyTimeoutMs = 60000,
} = {}) {
    scratchDir(); // creates the scratch directory (and node.pid) first
    const [redisServer, pg] = await Promise.all([startRedis(), startPostgres()]);
    await migrate(pg.url);
    const redis = await redisClient(redisServer.url);
    if (seed) await seed(redis);

    const adminToken = crypto.randomBytes(24).toString('hex');
    const base = { redisUrl: redisServer.url, dbUrl: pg.url };
    const [control, ...gates] = await Promise.all([
        startGate({ ...base, command: 'control', env: { SG_ADMIN_TOKEN: adminToken, SG_REPLICA_ID: 'control', ...controlEnv } }),
        ...Array.from({ length: replicas }, (_, i) =>
            startGate({ ...base, env: { SG_REPLICA_ID: `gate-${i + 1}`, ...gateEnv } }).then((g) =>
                Object.assign(g, { name: `gate-${i + 1}` }),
            ),
        ),
    ]);
    await Promise.all(gates.map((g) => waitReady(g, { timeoutMs: readyTimeoutMs })));

    const lb = await startHaproxy({ gates, controlPort: control.port, checkMs, fall, rise });
    const fleet = {
        redisServer,
        pg,
        redisUrl: redisServer.url,
        dbUrl: pg.url,
        redis,
        adminToken,
        gates,
        control,
        lb,
        url: lb.url,
        killswitch: (args) => runBin(['killswitch', ...args], { env: { SG_REDIS_URL: redisServer.url }, timeoutMs: 15000 }),
        async waitLbServers(pred, { timeoutMs = 10000, message = 'haproxy server states' } = {}) {
            let last = null;
            try {
                return await waitFor(
                    async () => {
                        last = await lb.servers();
                        return pred(last) ? last : false;
                    },
                    { timeoutMs, intervalMs: 50, message },
                );
            } catch (err) {
                err.message += `\nlast states: ${JSON.stringify(last)}\n--- haproxy log ---\n${lb.logs().slice(-3000)}`;
                throw err;
            }
        },
    };
    await fleet.waitLbServers((s) => Object.values(s).length === replicas + 1 && Object.values(s).every((v) => v === 'UP'), {
        message: 'every haproxy server UP',
    });
    return fleet;
}

/* ------------------------------------------------------------------------------------------
 * Agents under load, in a worker thread
 * ---------------------------------------------------------------------------------------- */

// The worker connects one official SDK client per agent and calls `tool` in a loop on each
// until told to stop (or maxMs). It stamps every call with absolute times (timeOrigin + now),
// so what the agents measure does not depend on how busy the test's own event loop is.
const AGENT_WORKER = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const now = () => performance.timeOrigin + performance.now();
let stopped = false;
parentPort.on('message', (m) => { if (m === 'stop') stopped = true; });
(async () => {
    const { Client } = await import(w.clientUrl);
    const { StreamableHTTPClientTransport } = await import(w.transportUrl);
    const agents = [];
    for (const a of w.agents) {
        const transport = new StreamableHTTPClientTransport(new URL(w.url + '/mcp'), {
            requestInit: { headers: { Authorization: 'Bearer ' + a.key } },
            reconnectionOptions: { maxReconnectionDelay: 1000, initialReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 2 },
        });
        const client = new Client({ name: a.name, version: '0' }, {});
        client.onerror = () => {};
        await client.connect(transport);
        agents.push({ client, transport });
    }
    const sessions = () => agents.map((a) => a.transport.sessionId);
    parentPort.postMessage({ type: 'ready', sessions: sessions() });
    const deadline = now() + w.maxMs;
    let seq = 0;
    await Promise.all(agents.map(async (a, i) => {
        while (!stopped && now() < deadline) {
            const marker = w.label + '-' + i + '-' + (++seq);
            const sent = now();
            let r;
            try {
                const res = await a.client.callTool({ name: w.tool, arguments: { message: marker } }, undefined, { timeout: w.callTimeoutMs });
                r = res.isError ? { ok: false, isError: true } : { ok: true };
            } catch (err) {
                const cause = err.cause && (err.cause.code || err.cause.message);
                r = { ok: false, code: err.code, scope: err.data && err.data.scope,
                      message: cause ? err.message + ' (' + cause + ')' : err.message };
            }
            parentPort.postMessage({ type: 'result', r: { ...r, marker, loop: i, sent, done: now(), session: a.transport.sessionId } });
        }
    }));
    parentPort.postMessage({ type: 'done', sessions: sessions() });
    await Promise.all(agents.map((a) => a.client.close().catch(() => {})));
})().catch((err) => parentPort.postMessage({ type: 'error', message: String((err && err.stack) || err) }));
`;

const workers = new Set();
after(async () => {
    await Promise.all([...workers].map((w) => w.terminate()));
    workers.clear();
});

/**
 * Agents (official SDK clients, one session each) calling `tool` with {message} in a loop
 * through url (a replica or the load balancer), in a worker thread. Resolves once every agent
 * has its session: {label, results, sessions, finalSessions, since(t), stop()} where results
 * fill in as calls are answered ({ok, code, scope, message, marker, loop, sent, done, session},
 * times on this thread's performance.now() scale) and stop() ends the loops and resolves the
 * results. Every loop is bounded by maxMs.
 */
export async function startAgents({ url, agents, tool, label = 'agents', maxMs = 60000, callTimeoutMs = 5000 }) {
    const { Worker } = await import('node:worker_threads');
    const worker = new Worker(AGENT_WORKER, {
        eval: true,
        workerData: {
            url,
            agents,
            tool,
            label,
            maxMs,
            callTimeoutMs,
            clientUrl: import.meta.resolve('@modelcontextprotocol/sdk/client/index.js'),
            transportUrl: import.meta.resolve('@modelcontextprotocol/sdk/client/streamableHttp.js'),
        },
    });
    workers.add(worker);
    const offset = performance.timeOrigin; // worker stamps are absolute
    const ctl = { label, results: [], sessions: null, finalSessions: null };
    let failure = null;
    let readyResolve;
    let doneResolve;
    const ready = new Promise((resolve) => (readyResolve = resolve));
    const done = new Promise((resolve) => (doneResolve = resolve));
    worker.on('message', (m) => {
        if (m.type === 'result') {
            ctl.results.push({ ...m.r, label, sent: m.r.sent - offset, done: m.r.done - offset });
        } else if (m.type === 'ready') {
            ctl.sessions = m.sessions;
            readyResolve();
        } else if (m.type === 'done') {
            ctl.finalSessions = m.sessions;
            doneResolve();
        } else if (m.type === 'error') {
            failure = new Error(`agents worker: ${m.message}`);
            readyResolve();
            doneResolve();
        }
    });
    worker.on('error', (err) => {
        failure = err;
        readyResolve();
        doneResolve();
    });
    worker.on('exit', () => {
        readyResolve();
        doneResolve();
    });
    await ready;
    if (failure) throw failure;
    ctl.since = (t) => ctl.results.filter((r) => r.done >= t);
    ctl.stop = async () => {
        worker.postMessage('stop');
        let timer;
        await Promise.race([done, new Promise((resolve) => (timer = setTimeout(resolve, callTimeoutMs + 5000)))]);
        clearTimeout(timer);
        await worker.terminate();
        workers.delete(worker);
        if (failure) throw failure;
        return ctl.results;
    };
    return ctl;
}

/**
 * A minimal RESP connection to redisUrl (no password support needed by the harness' Redis) for
 * timing: command(...args) writes the command at once (no corking, unlike node-redis, which
 * delays the write to the next turn of a busy event loop) and resolves the reply's first line
 * ("+OK", ":1", "$-1", ...). sentAt of the last command is performance.now() just before the
 * write. Closed when the test file ends.
 */
export async function respConnection(redisUrl) {
    const u = new URL(redisUrl);
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    sock.setNoDelay(true);
    await new Promise((resolve, reject) => {
        sock.once('connect', resolve);
        sock.once('error', reject);
    });
    sock.on('error', () => {});
    const waiting = [];
    let buf = '';
    sock.on('data', (d) => {
        buf += d.toString('latin1');
        let i;
        while (waiting.length > 0 && (i = buf.indexOf('\r\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (line.startsWith('$') && Number(line.slice(1)) >= 0) {
                // bulk string: drop its payload line too (callers only look at the first line)
                const j = buf.indexOf('\r\n');
                if (j >= 0) buf = buf.slice(j + 2);
            }
            waiting.shift().resolve(line);
        }
    });
    sock.on('close', () => {
        while (waiting.length > 0) waiting.shift().reject(new Error('redis connection closed'));
    });
    const conn = {
        sentAt: null,
        command(...args) {
            const parts = [`*${args.length}\r\n`];
            for (const a of args) parts.push(`$${Buffer.byteLength(String(a))}\r\n${a}\r\n`);
            return new Promise((resolve, reject) => {
                waiting.push({ resolve, reject });
                conn.sentAt = performance.now();
                sock.write(parts.join(''));
            });
        },
        close: () => sock.destroy(),
    };
    closeAtEnd.push(conn.close);
    return conn;
}
const closeAtEnd = [];
after(() => {
    while (closeAtEnd.length > 0) closeAtEnd.pop()();
});

/** GET url/readyz on each gate: [{name, status, json}] (json null when not JSON). */
export async function readyzAll(gates) {
    return Promise.all(
        gates.map(async (g) => {
            const r = await request(`${g.url}/readyz`, { timeoutMs: 2000 });
            let json = null;
            try {
                json = r.json();
            } catch {
                /* not JSON */
            }
            return { name: g.name, status: r.status, json };
        }),
    );
}

