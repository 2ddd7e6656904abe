// SPDX-License-Identifier: Apache-2.0
//
// Kill switches and fail-closed behaviour across a fleet (issue 7, DESIGN §1, §3, §5): three
// gate replicas and the control plane behind haproxy (lib/fleet.js), one Redis, one
// PostgreSQL, server-everything over stdio as every tenant's upstream. Load comes from agents
// using the official SDK client through the load balancer (in a worker thread, which stamps
// its own times); per-replica figures come from raw Streamable HTTP probes on kept-alive
// connections sent straight to each replica's port, and ops' plain SET is written on a RESP
// connection of its own, so that the clock starts when the command leaves.
//
// Figures are printed (console.log); the only timing assertions are the issue's bounds:
// a plain SET of a kill switch is answered with refusals by every replica within 150 ms, and a
// replica that cannot confirm the kill-switch state refuses strict and standard tenants past
// 1 s (asserted with the poll period and some slack on top).
//
// Tenants (written before the replicas start):
//   acme    standard    agent-1, agent-2   ev = server-everything (stdio, tapped)
//   strict  strict      strict-1           ev
//   perm    permissive  perm-1, perm-2     ev

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { request, sleep, tempDir, waitFor } from './lib/harness.js';
import {
    EVERYTHING_BIN,
    connectClient,
    newKey,
    parseSse,
    processAlive,
    rawPeer,
    readTap,
    redisClient,
    rpc,
    spawnedPids,
    tapped,
    writeTenant,
} from './lib/mcp.js';
import { readyzAll, respConnection, startAgents, startFleet } from './lib/fleet.js';

const ECHO = 'ev__echo';
const LONG = 'ev__trigger-long-running-operation';
const KILLED = -31003;
const UNCONFIRMED = -31007;
const PROPAGATION_BOUND_MS = 150; // issue 7: a plain SET is observed within 100 ms (+ slack)
const FAIL_CLOSED_BOUND_MS = 1000; // DESIGN / issue 7: default bound
const POLL_MS = 100;
const FAIL_CLOSED_SLACK_MS = 250; // request latency and timer slack on a loaded machine

const KEY = {
    a1: newKey('acme1'),
    a2: newKey('acme2'),
    s1: newKey('strict1'),
    p1: newKey('perm1'),
    p2: newKey('perm2'),
};

let fleet;
let redis; // replaced after the Redis restart of the fail-closed test
let tapBase;

// The tests are about kill switches, not policy: every tenant allows its upstream's tools
// explicitly (the profile decides what happens when Redis is unreachable).
const EV_ALLOWED = { name: 'ev-allowed', priority: 100, action: 'allow', match: { tool: 'ev__*' } };

const ev = () => ({ name: 'ev', prefix: 'ev', command: EVERYTHING_BIN, args: ['stdio'], timeout_ms: 60000 });

before(async () => {
    tapBase = path.join(tempDir('tap-'), 'acme-ev');
    fleet = await startFleet({
        replicas: 3,
        gateEnv: { SG_LOG_LEVEL: 'info' }, // debug logs every call: too much under load
        seed: async (r) => {
            await writeTenant(r, {
                tenant: 'acme',
                version: 1,
                identities: [
                    { name: 'agent-1', keys: [KEY.a1] },
                    { name: 'agent-2', keys: [KEY.a2] },
                ],
                upstreams: [{ name: 'ev', prefix: 'ev', ...tapped(tapBase, EVERYTHING_BIN, ['stdio']), timeout_ms: 60000 }],
                extra: { profile: 'standard', policies: [EV_ALLOWED] },
            });
            await writeTenant(r, {
                tenant: 'strict',
                version: 1,
                identities: [{ name: 'strict-1', keys: [KEY.s1] }],
                upstreams: [ev()],
                extra: { profile: 'strict', policies: [EV_ALLOWED] },
            });
            await writeTenant(r, {
                tenant: 'perm',
                version: 1,
                identities: [
                    { name: 'perm-1', keys: [KEY.p1] },
                    { name: 'perm-2', keys: [KEY.p2] },
                ],
                upstreams: [ev()],
                extra: { profile: 'permissive', policies: [EV_ALLOWED] },
            });
        },
    });
    redis = fleet.redis;
    console.log(
        `fleet: lb ${fleet.url}, replicas ${fleet.gates.map((g) => `${g.name}@${g.port}`).join(' ')}, control @${fleet.control.port}`,
    );
});

/* ------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------- */

const ms = (x) => `${x.toFixed(1)} ms`;

/** A raw peer with an initialized session on target ({url}: a replica or the load balancer). */
async function session(target, key) {
    const peer = rawPeer(target, key);
    await peer.initialize();
    return peer;
}

let probeSeq = 0;

/* Probes keep their connections open (one keep-alive agent per target), so that what a probe
 * measures is the gate, not TCP set-up on a busy machine. */
const kaAgents = new Map();
function keepAliveAgent(url) {
    const origin = new URL(url).origin;
    if (!kaAgents.has(origin)) kaAgents.set(origin, new http.Agent({ keepAlive: true, maxSockets: 16 }));
    return kaAgents.get(origin);
}
after(() => {
    for (const a of kaAgents.values()) a.destroy();
});

/** POST one JSON-RPC message on peer's session over a kept-alive connection: {status, body, response}. */
function fastPost(peer, message, timeoutMs = 5000) {
    const u = new URL(`${peer.gate.url}/mcp`);
    const payload = Buffer.from(JSON.stringify(message));
    return new Promise((resolve, reject) => {
        const req = http.request(
            {
                host: u.hostname,
                port: u.port,
                path: u.pathname,
                method: 'POST',
                agent: keepAliveAgent(peer.gate.url),
                headers: { ...peer.headers(), 'Content-Length': String(payload.length) },
                timeout: timeoutMs,
            },
            (res) => {
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                res.on('error', reject);
                res.on('end', () => {
                    const body = Buffer.concat(chunks).toString('utf8');
                    let messages = [];
                    try {
                        const ctype = String(res.headers['content-type'] || '');
                        if (ctype.startsWith('text/event-stream')) messages = parseSse(body);
                        else if (body !== '') messages = [JSON.parse(body)];
                    } catch {
                        /* reported through response === undefined */
                    }
                    resolve({ status: res.statusCode, body, response: messages.find((m) => m.id === message.id) });
                });
            },
        );
        req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end(payload);
    });
}

/**
 * One tools/call of ev__echo through peer. Resolves {ok, code, scope, status, marker, error}
 * (never rejects: a transport failure is {ok: false, transport}).
 */
async function echoOnce(peer, tag = 'p') {
    const marker = `${tag}-${++probeSeq}`;
    try {
        const r = await fastPost(peer, rpc('tools/call', { name: ECHO, arguments: { message: marker } }));
        const resp = r.response;
        if (r.status === 200 && resp && resp.result && !resp.result.isError) return { ok: true, marker };
        if (resp && resp.error) {
            return { ok: false, marker, status: r.status, code: resp.error.code, scope: resp.error.data?.scope, error: resp.error };
        }
        return { ok: false, marker, status: r.status, body: r.body.slice(0, 300) };
    } catch (err) {
        return { ok: false, marker, transport: err.message };
    }
}

/**
 * Runs `loops` concurrent loops of fn(i) until stop() (or maxMs, so every loop is bounded);
 * each result is recorded with its send and answer times (performance.now()) and its label;
 * `pending` maps each loop to the send time of its call in flight.
 */
function load(label, loops, fn, { maxMs = 60000 } = {}) {
    const ctl = { label, stopped: false, results: [], pending: new Map() };
    const deadline = performance.now() + maxMs;
    const runners = Array.from({ length: loops }, async (_, i) => {
        while (!ctl.stopped && performance.now() < deadline) {
            const sent = performance.now();
            ctl.pending.set(i, sent);
            const r = await fn(i);
            ctl.pending.delete(i);
            ctl.results.push({ ...r, label, loop: i, sent, done: performance.now() });
        }
    });
    ctl.stop = async () => {
        ctl.stopped = true;
        await Promise.all(runners);
        return ctl.results;
    };
    ctl.since = (t) => ctl.results.filter((r) => r.done >= t);
    return ctl;
}

/** The results of a load whose call was sent at or after t (wholly after a change at t). */
const sentSince = (ctl, t) => ctl.results.filter((r) => r.sent >= t);

/**
 * Waits (bounded) until every load has at least n calls sent at or after t answered, or, with
 * perLoop, n such calls on each of its loops. Returns the moment it did.
 */
async function callsSince(loads, t, { n = 3, perLoop = false, timeoutMs = 10000 } = {}) {
    await waitFor(
        () =>
            loads.every((l) => {
                const rs = sentSince(l, t);
                if (!perLoop) return rs.length >= n;
                const loops = new Set(l.results.map((r) => r.loop));
                return [...loops].every((i) => rs.filter((r) => r.loop === i).length >= n);
            }),
        { timeoutMs, intervalMs: 20, message: `${n} calls answered since t on every load` },
    );
    return performance.now();
}

/** For failure messages: each load's calls answered since t and those still in flight. */
function trace(loads, t, what) {
    const r = (x) => Math.round(x - t);
    return loads
        .map((l) => {
            const calls = l.results.filter((x) => x.done >= t).slice(-12).map((x) => `[${r(x.sent)}→${r(x.done)} ${describe(x)}]`);
            const pending = l.pending ? [...l.pending.values()].map((x) => r(x)) : [];
            return `  ${l.label}: ${calls.join(' ') || 'no call answered'}${pending.length ? `; in flight since ${pending.join(', ')}` : ''}`;
        })
        .join('\n')
        .replace(/^/, `calls (ms after ${what}):\n`);
}

/** The first result answered at or after t that satisfies pred (by answer time). */
function firstAfter(results, t, pred) {
    let best = null;
    for (const r of results) if (r.done >= t && pred(r) && (best === null || r.done < best.done)) best = r;
    return best;
}

const describe = (r) => (r ? (r.ok ? 'ok' : r.code ? `${r.code}/${r.scope}` : r.transport || r.message || `HTTP ${r.status}`) : 'none');

/** Waits until one call through each of peers (one per replica) satisfies check(result). */
async function untilEveryReplica(peers, check, { timeoutMs = 5000, message = 'every replica' } = {}) {
    const last = new Map();
    try {
        await waitFor(
            async () => {
                const rs = await Promise.all(peers.map((p) => echoOnce(p, 'chk')));
                rs.forEach((r, i) => last.set(i, r));
                return rs.every(check);
            },
            { timeoutMs, intervalMs: 20, message },
        );
    } catch (err) {
        err.message += `\nlast answers: ${JSON.stringify([...last.values()].map(describe))}`;
        throw err;
    }
}

/** ms from wallT0 to the replica's log line "global kill switch ENGAGED" after it (null if none). */
function engagedLogged(name, wallT0) {
    const g = fleet.gates.find((x) => x.name === name);
    for (const line of g.logs().split('\n')) {
        const m = /^ts=(\S+) .*global kill switch ENGAGED/.exec(line);
        if (m && Date.parse(m[1]) >= wallT0 - 5) return Date.parse(m[1]) - wallT0;
    }
    return null;
}

/** Raw peers, one per replica, each with its own session on that replica. */
const perReplica = (key) => Promise.all(fleet.gates.map((g) => session(g, key)));

/* ------------------------------------------------------------------------------------------
 * 0. The topology itself
 * ---------------------------------------------------------------------------------------- */

test('haproxy spreads requests over the replicas round robin and sends /admin to the control plane', async () => {
    const seen = {};
    for (let i = 0; i < 9; i++) {
        const r = await request(`${fleet.url}/healthz`, { timeoutMs: 3000 });
        assert.equal(r.status, 200, r.body);
        const replica = r.json().replica;
        seen[replica] = (seen[replica] ?? 0) + 1;
    }
    console.log(`9 requests through haproxy: ${JSON.stringify(seen)}`);
    assert.deepEqual(Object.keys(seen).sort(), fleet.gates.map((g) => g.name).sort(), 'every replica serves, nothing else does');
    for (const g of fleet.gates) assert.ok(seen[g.name] >= 2, `${g.name} got its share`);

    // an admin path: the load balancer answers as the control plane does, not as a replica does
    const p = '/admin/api/v1/no-such-endpoint';
    const [viaLb, direct, onGate] = await Promise.all([
        request(`${fleet.url}${p}`),
        request(`${fleet.control.url}${p}`),
        request(`${fleet.gates[0].url}${p}`),
    ]);
    console.log(`GET ${p}: via haproxy ${viaLb.status}, control ${direct.status}, a replica ${onGate.status}`);
    assert.equal(viaLb.status, direct.status);
    assert.equal(viaLb.body, direct.body);
    assert.ok(viaLb.status !== onGate.status || viaLb.body !== onGate.body, 'a replica would have answered differently');
    const mcp = await request(`${fleet.url}/mcp`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(mcp.status, 401, '/mcp reaches a replica (no key: 401)');
    assert.match(String(mcp.headers['www-authenticate']), /resource_metadata=/);
});

/* ------------------------------------------------------------------------------------------
 * 1. Global kill switch by a plain SET under load
 * ---------------------------------------------------------------------------------------- */

test('global kill switch: a plain SET stops every replica within 150 ms; DEL lets calls flow again', async () => {
    // agents through the load balancer (official SDK client)
    const lbLoad = await startAgents({
        url: fleet.url,
        label: 'lb',
        tool: ECHO,
        agents: [KEY.a1, KEY.a2, KEY.a1].map((key, i) => ({ key, name: `agent-${i}` })),
    });
    // probes straight to each replica: 2 loops each, so a refusal is seen at a fine resolution
    const probePeers = [];
    for (const g of fleet.gates) probePeers.push(await Promise.all([0, 1].map(() => session(g, KEY.a1))));
    const probes = fleet.gates.map((g, r) => load(g.name, 2, (i) => echoOnce(probePeers[r][i], `${g.name}`)));
    // ops' plain SET, on a connection of its own that writes at once (timing starts at the write)
    const ops = await respConnection(fleet.redisUrl);

    try {
        await callsSince([...probes, lbLoad], 0, { n: 5 });
        for (const p of probes) {
            assert.ok(p.results.length > 0 && p.results.every((r) => r.ok), `${p.label} serves before the switch: ${describe(p.results.find((r) => !r.ok))}`);
        }
        assert.ok(lbLoad.results.length > 0 && lbLoad.results.every((r) => r.ok), `agents served before: ${describe(lbLoad.results.find((r) => !r.ok))}`);

        const wallT0 = Date.now();
        const setReply = ops.command('SET', 'sg:killswitch', '1'); // no event published
        const t0 = ops.sentAt;
        assert.equal(await setReply, '+OK');
        const tSet = performance.now();
        await waitFor(() => probes.every((p) => firstAfter(p.results, t0, (r) => r.code === KILLED)), {
            timeoutMs: 3000,
            intervalMs: 10,
            message: 'a -31003 from every replica',
        });
        const figures = probes.map((p) => {
            const first = firstAfter(p.results, t0, (r) => r.code === KILLED);
            const lastOk = p.results.filter((r) => r.ok && r.sent >= t0).reduce((m, r) => Math.max(m, r.sent - t0), -1);
            return { replica: p.label, first, ms: first.done - t0, lastOkSentMs: lastOk, logged: engagedLogged(p.label, wallT0) };
        });
        console.log(`global kill switch (SET took ${ms(tSet - t0)}); time from SET to each replica's first -31003:`);
        for (const f of figures) {
            console.log(
                `  ${f.replica}: ${ms(f.ms)}` +
                    (f.lastOkSentMs >= 0 ? ` (last call served was sent ${ms(f.lastOkSentMs)} after the SET)` : '') +
                    (f.logged !== null ? `; the replica logged "ENGAGED" ${f.logged} ms after the SET was sent` : ''),
            );
        }
        // every replica refuses now: a call sent from here on is refused wherever it lands
        const tSettled = performance.now();
        await callsSince([...probes, lbLoad], tSettled, { n: 5 });
        for (const f of figures) {
            assert.equal(f.first.scope, 'global', `${f.replica}: data.scope`);
            assert.ok(f.ms <= PROPAGATION_BOUND_MS, `${f.replica}: first refusal after ${ms(f.ms)} > ${PROPAGATION_BOUND_MS} ms`);
        }
        for (const p of [...probes, lbLoad]) {
            const bad = sentSince(p, tSettled).filter((r) => !(r.code === KILLED && r.scope === 'global'));
            assert.equal(bad.length, 0, `${p.label}: every call refused with -31003/global once engaged, got ${describe(bad[0])}`);
        }

        // refused before any upstream contact; a refused call that had already reached the
        // upstream (in flight at the switch) was cancelled there
        const refusedMarkers = new Set(probes.flatMap((p) => p.results.filter((r) => r.code === KILLED).map((r) => r.marker)));
        let inFlight = 0;
        for (const g of fleet.gates) {
            const tapped = readTap(tapBase, g);
            const reached = tapped.filter((m) => m.method === 'tools/call' && refusedMarkers.has(m.params?.arguments?.message));
            const cancelled = new Set(tapped.filter((m) => m.method === 'notifications/cancelled').map((m) => m.params?.requestId));
            const leaked = reached.filter((m) => !cancelled.has(m.id));
            inFlight += reached.length;
            assert.equal(leaked.length, 0, `${g.name}: refused calls that reached the upstream and were not cancelled: ${JSON.stringify(leaked.slice(0, 3))}`);
        }
        console.log(`  ${refusedMarkers.size} probe calls refused; ${inFlight} of them were in flight at the switch and were cancelled upstream`);

        // tools/list still answers on every replica, so agents can explain what happened
        for (const [r, g] of fleet.gates.entries()) {
            const l = await probePeers[r][0].post(rpc('tools/list', {}));
            assert.ok(l.response?.result?.tools?.some((t) => t.name === ECHO), `${g.name}: tools/list while engaged: ${l.body.slice(0, 200)}`);
        }
        const viaLb = await session(fleet, KEY.a2);
        const lbList = await viaLb.post(rpc('tools/list', {}));
        assert.ok(lbList.response?.result?.tools?.length > 0, 'tools/list through the load balancer while engaged');

        const delReply = ops.command('DEL', 'sg:killswitch');
        const t1 = ops.sentAt;
        assert.equal(await delReply, ':1');
        await waitFor(() => probes.every((p) => firstAfter(p.results, t1, (r) => r.ok)), {
            timeoutMs: 3000,
            intervalMs: 10,
            message: 'calls served again on every replica',
        });
        console.log(
            `global kill switch released (DEL): first call served again after ${probes
                .map((p) => `${p.label} ${ms(firstAfter(p.results, t1, (r) => r.ok).done - t1)}`)
                .join(', ')}`,
        );
        const tFlow = performance.now();
        await callsSince([...probes, lbLoad], tFlow, { n: 5 });
        for (const p of [...probes, lbLoad]) {
            const late = sentSince(p, tFlow);
            assert.ok(late.every((r) => r.ok), `${p.label}: calls flow again after DEL: ${describe(late.find((r) => !r.ok))}`);
        }
    } finally {
        await Promise.all([lbLoad.stop(), ...probes.map((p) => p.stop())]);
        await redis.del('sg:killswitch');
    }
    const counts = [...probes, lbLoad].map((p) => `${p.label} ${p.results.length}`).join(', ');
    console.log(`  calls made: ${counts}`);
});

/* ------------------------------------------------------------------------------------------
 * 2. Tenant and identity scopes, by SET and by the CLI
 * ---------------------------------------------------------------------------------------- */

test('tenant and identity kill switches stop only their scope; the CLI flips them', async () => {
    const [a1, a2, p1] = await Promise.all([perReplica(KEY.a1), perReplica(KEY.a2), perReplica(KEY.p1)]);
    const okAll = (peers, what) => untilEveryReplica(peers, (r) => r.ok, { message: `${what} served on every replica` });
    const killedAll = (peers, scope, what) =>
        untilEveryReplica(peers, (r) => r.code === KILLED && r.scope === scope, { message: `${what} refused -31003/${scope} on every replica` });
    const stillOk = async (peers, what) => {
        for (const [i, p] of peers.entries()) {
            const r = await echoOnce(p, 'still');
            assert.ok(r.ok, `${what} on ${fleet.gates[i].name}: ${describe(r)}`);
        }
    };

    await Promise.all([okAll(a1, 'agent-1'), okAll(a2, 'agent-2'), okAll(p1, 'perm-1')]);

    // identity scope: only agent-1
    await redis.set('sg:{acme}:killswitch:agent-1', '1');
    await killedAll(a1, 'identity', 'agent-1');
    await stillOk(a2, 'agent-2 (same tenant)');
    await stillOk(p1, 'perm-1 (other tenant)');
    const viaLb = await session(fleet, KEY.a1);
    const lbr = await echoOnce(viaLb, 'lb');
    assert.equal(lbr.code, KILLED, `agent-1 through the load balancer: ${describe(lbr)}`);
    assert.equal(lbr.scope, 'identity');
    assert.equal(typeof lbr.error.message, 'string');
    assert.ok(lbr.error.message.length > 0, 'a human reason');

    // tenant scope on top: both identities, scope "tenant" (the wider switch wins); other tenant unaffected
    await redis.set('sg:{acme}:killswitch', '1');
    await killedAll(a1, 'tenant', 'agent-1');
    await killedAll(a2, 'tenant', 'agent-2');
    await stillOk(p1, 'perm-1 (other tenant)');

    // prompts/get and resources/read are refused too; tools/list answers
    {
        const g = a2[0];
        const pr = await g.post(rpc('prompts/get', { name: 'ev__simple-prompt' }));
        assert.equal(pr.response?.error?.code, KILLED, `prompts/get: ${pr.body.slice(0, 300)}`);
        assert.equal(pr.response.error.data?.scope, 'tenant');
        const rr = await g.post(rpc('resources/read', { uri: 'demo://resource/dynamic/text/1' }));
        assert.equal(rr.response?.error?.code, KILLED, `resources/read: ${rr.body.slice(0, 300)}`);
        assert.equal(rr.response.error.data?.scope, 'tenant');
        const tl = await g.post(rpc('tools/list', {}));
        assert.ok(tl.response?.result?.tools?.length > 0, `tools/list under the tenant switch: ${tl.body.slice(0, 200)}`);
    }

    // releasing the tenant switch leaves the identity switch in force
    await redis.del('sg:{acme}:killswitch');
    await okAll(a2, 'agent-2');
    await killedAll(a1, 'identity', 'agent-1');
    await redis.del('sg:{acme}:killswitch:agent-1');
    await okAll(a1, 'agent-1');

    // the CLI: on --tenant / off --tenant, on/off --tenant --identity (it publishes an event: at once)
    {
        let r = await fleet.killswitch(['on', '--tenant', 'acme']);
        assert.equal(r.code, 0, `killswitch on --tenant acme: ${r.stderr}${r.stdout}`);
        const tCli = performance.now();
        assert.equal(await redis.get('sg:{acme}:killswitch'), '1');
        await killedAll(a1, 'tenant', 'agent-1');
        console.log(`CLI 'killswitch on --tenant acme' (${r.ms} ms to run): every replica refusing ${ms(performance.now() - tCli)} after it exited`);
        await killedAll(a2, 'tenant', 'agent-2');
        await stillOk(p1, 'perm-1 (other tenant) under the CLI tenant switch');

        r = await fleet.killswitch(['off', '--tenant', 'acme']);
        assert.equal(r.code, 0, `killswitch off --tenant acme: ${r.stderr}${r.stdout}`);
        assert.equal(await redis.exists('sg:{acme}:killswitch'), 0, 'off deletes the key');
        await okAll(a1, 'agent-1 after off');
        await okAll(a2, 'agent-2 after off');

        r = await fleet.killswitch(['on', '--tenant', 'acme', '--identity', 'agent-2']);
        assert.equal(r.code, 0, `killswitch on --identity: ${r.stderr}`);
        await killedAll(a2, 'identity', 'agent-2');
        await stillOk(a1, 'agent-1 under the CLI identity switch of agent-2');
        r = await fleet.killswitch(['off', '--tenant', 'acme', '--identity', 'agent-2']);
        assert.equal(r.code, 0, `killswitch off --identity: ${r.stderr}`);
        await okAll(a2, 'agent-2 after off');

        // global through the CLI
        r = await fleet.killswitch(['on']);
        assert.equal(r.code, 0, `killswitch on: ${r.stderr}`);
        await killedAll(p1, 'global', 'perm-1');
        await killedAll(a1, 'global', 'agent-1');
        r = await fleet.killswitch(['off']);
        assert.equal(r.code, 0, `killswitch off: ${r.stderr}`);
        await okAll(p1, 'perm-1 after global off');

        // bad usage: a clear error, nothing changed
        r = await fleet.killswitch(['on', '--identity', 'agent-1']);
        assert.notEqual(r.code, 0, '--identity without --tenant is refused');
        assert.match(r.stderr, /tenant/);
        assert.equal(await redis.exists('sg:killswitch'), 0);
    }
});

/* ------------------------------------------------------------------------------------------
 * 3. A call in flight is ended when its switch is engaged
 * ---------------------------------------------------------------------------------------- */

test('an in-flight long call is ended with -31003 and cancelled upstream; other identities finish', async () => {
    const g = fleet.gates[0];
    const [c1, c2] = await Promise.all([connectClient(g, KEY.a1, { name: 'long-1' }), connectClient(g, KEY.a2, { name: 'long-2' })]);
    let progressed1 = 0;
    let progressed2 = 0;
    const victim = c1.client.callTool({ name: LONG, arguments: { duration: 20, steps: 20 } }, undefined, {
        onprogress: () => progressed1++,
        timeout: 60000,
    });
    victim.catch(() => {});
    const bystander = c2.client.callTool({ name: LONG, arguments: { duration: 2.5, steps: 5 } }, undefined, {
        onprogress: () => progressed2++,
        timeout: 60000,
    });
    bystander.catch(() => {});
    try {
        await waitFor(() => progressed1 >= 1 && progressed2 >= 1, { timeoutMs: 5000, message: 'both long calls running upstream' });
        const t0 = performance.now();
        await redis.set('sg:{acme}:killswitch:agent-1', '1');
        let err = null;
        try {
            await victim;
        } catch (e) {
            err = e;
        }
        const took = performance.now() - t0;
        console.log(`in-flight call of agent-1 ended ${ms(took)} after its identity switch was SET (progress seen: ${progressed1})`);
        assert.ok(err, 'the in-flight call is ended with an error');
        assert.equal(err.code, KILLED, `error code: ${err.message}`);
        assert.equal(err.data?.scope, 'identity');
        assert.ok(took < 5000, 'ended long before the call would have finished');

        const upstreamCall = readTap(tapBase, g).find((m) => m.method === 'tools/call' && m.params?.arguments?.duration === 20);
        assert.ok(upstreamCall, 'the victim reached the upstream');
        await waitFor(
            () => readTap(tapBase, g).find((m) => m.method === 'notifications/cancelled' && m.params?.requestId === upstreamCall.id),
            { timeoutMs: 3000, message: `notifications/cancelled for upstream id ${upstreamCall.id}` },
        );

        const done = await bystander;
        assert.ok(!done.isError, 'agent-2 (not switched off) finishes its call');
        assert.ok(progressed2 >= 4, `agent-2 got its progress (${progressed2})`);
    } finally {
        await redis.del('sg:{acme}:killswitch:agent-1');
    }
});

/* ------------------------------------------------------------------------------------------
 * 4. Redis stopped under load: fail closed, permissive served, automatic recovery
 * ---------------------------------------------------------------------------------------- */

test('Redis stopped under load: strict and standard refused with -31007 within the bound, permissive served, recovery without restarts', async () => {
    const pidsBefore = fleet.gates.map((g) => g.proc.pid);
    for (const k of [KEY.s1, KEY.a1, KEY.p1]) {
        await untilEveryReplica(await perReplica(k), (r) => r.ok, { message: 'every tenant served before the outage' });
    }
    const tenants = [
        { name: 'strict', key: KEY.s1, closes: true },
        { name: 'acme', key: KEY.a1, closes: true },
        { name: 'perm', key: KEY.p1, closes: false },
    ];
    const probes = [];
    for (const t of tenants) {
        for (const g of fleet.gates) {
            const peers = await Promise.all([0, 1].map(() => session(g, t.key)));
            probes.push(Object.assign(load(`${t.name}@${g.name}`, peers.length, (i) => echoOnce(peers[i], t.name)), { tenant: t, gate: g }));
        }
    }
    // a permissive tenant is served with the last known state: perm-2, switched off before the
    // outage, stays refused (-31003) through it
    await redis.set('sg:{perm}:killswitch:perm-2', '1');
    const p2Peers = await perReplica(KEY.p2);
    await untilEveryReplica(p2Peers, (r) => r.code === KILLED && r.scope === 'identity', { message: 'perm-2 switched off' });
    const p2Load = fleet.gates.map((g, i) => Object.assign(load(`perm-2@${g.name}`, 1, () => echoOnce(p2Peers[i], 'perm2')), { tenant: { name: 'perm-2', closes: false, killed: true } }));
    const lbLoad = await Promise.all(
        tenants.map(async (t) =>
            Object.assign(await startAgents({ url: fleet.url, label: `${t.name}@lb`, tool: ECHO, agents: [{ key: t.key, name: `lb-${t.name}` }] }), {
                tenant: t,
            }),
        ),
    );
    const all = [...probes, ...lbLoad];
    let restarted = false;
    let p2Stopped = false;
    let subscribersBefore = 0;
    try {
        await callsSince([...all, ...p2Load], 0, { n: 3 });
        for (const p of all) {
            assert.ok(p.results.length > 0 && p.results.every((r) => r.ok), `${p.label} served before the outage: ${describe(p.results.find((r) => !r.ok))}`);
        }

        subscribersBefore = (await redis.pubSubNumSub('sg:events'))['sg:events'];
        assert.ok(subscribersBefore >= fleet.gates.length, `every replica subscribes to sg:events (${subscribersBefore} subscribers)`);
        await redis.save(); // so that the restarted server comes back with the same keys
        const tKill = performance.now();
        await fleet.redisServer.kill();
        const tDead = performance.now();

        const closing = probes.filter((p) => p.tenant.closes);
        try {
            await waitFor(() => closing.every((p) => firstAfter(p.results, tKill, (r) => r.code === UNCONFIRMED)), {
                timeoutMs: FAIL_CLOSED_BOUND_MS + 4000,
                intervalMs: 10,
                message: '-31007 for strict and standard tenants on every replica',
            });
        } catch (err) {
            err.message += `\n${trace(closing, tKill, 'the SIGKILL of Redis')}`;
            throw err;
        }
        // Redis was gone somewhere between tKill and tDead; a replica's last confirmation came
        // before that, so its refusals must start within the bound after tDead at the latest.
        console.log(`Redis killed (its exit seen ${ms(tDead - tKill)} after the SIGKILL); time from the SIGKILL to the first -31007:`);
        const closeTimes = closing.map((p) => {
            const first = firstAfter(p.results, tKill, (r) => r.code === UNCONFIRMED);
            const lastOk = p.results.filter((r) => r.ok && r.done >= tKill).reduce((m, r) => Math.max(m, r.done - tKill), -1);
            console.log(`  ${p.label}: ${ms(first.done - tKill)} (last call served answered at ${lastOk >= 0 ? ms(lastOk) : 'none after the kill'})`);
            return { p, ms: first.done - tDead };
        });
        // every replica refuses now; more outage for the permissive tenant and the readiness checks
        const tClosed = performance.now();
        const ready = await readyzAll(fleet.gates);
        console.log(`  /readyz during the outage: ${ready.map((r) => `${r.name} ${r.status} ${JSON.stringify(r.json?.missing ?? r.json)}`).join('; ')}`);
        const lbStates = await fleet.lb.servers();
        await sleep(1000);
        await callsSince([...all, ...p2Load], tClosed, { n: 3 });

        const bound = FAIL_CLOSED_BOUND_MS + POLL_MS + FAIL_CLOSED_SLACK_MS;
        for (const { p, ms: t } of closeTimes) {
            assert.ok(t <= bound, `${p.label}: first -31007 ${ms(t)} after Redis' exit was seen > ${bound} ms`);
        }
        for (const p of closing) {
            const bad = sentSince(p, tClosed).filter((r) => r.code !== UNCONFIRMED);
            assert.equal(bad.length, 0, `${p.label}: refused with -31007 for the whole outage, got ${describe(bad[0])}`);
        }
        for (const p of p2Load) {
            const bad = sentSince(p, tKill).filter((r) => !(r.code === KILLED && r.scope === 'identity'));
            assert.equal(bad.length, 0, `${p.label}: the last known identity switch holds through the outage, got ${describe(bad[0])}`);
        }
        await Promise.all(p2Load.map((p) => p.stop()));
        p2Stopped = true;
        for (const p of all.filter((x) => !x.tenant.closes)) {
            const bad = sentSince(p, tKill).filter((r) => !r.ok);
            assert.equal(bad.length, 0, `${p.label}: permissive tenant served through the outage, got ${describe(bad[0])}`);
        }
        for (const p of lbLoad.filter((x) => x.tenant.closes)) {
            const late = sentSince(p, tClosed);
            assert.ok(late.every((r) => r.code === UNCONFIRMED), `${p.label}: -31007 through the load balancer, not an LB error: ${describe(late.find((r) => r.code !== UNCONFIRMED))}`);
        }
        for (const r of ready) {
            assert.equal(r.status, 503, `${r.name}: /readyz during the outage`);
            assert.ok(JSON.stringify(r.json).includes('killswitch:unconfirmed'), `${r.name}: readyz names the kill switch: ${JSON.stringify(r.json)}`);
        }
        assert.ok(Object.values(lbStates).every((s) => s === 'UP'), `haproxy keeps the unready replicas in rotation: ${JSON.stringify(lbStates)}`);

        const tUp = performance.now();
        await fleet.redisServer.restart();
        restarted = true;
        const tListening = performance.now();
        await waitFor(() => closing.every((p) => firstAfter(p.results, tListening, (r) => r.ok)), {
            timeoutMs: 15000,
            intervalMs: 20,
            message: 'strict and standard tenants served again on every replica',
        });
        console.log(
            `Redis restarted on port ${fleet.redisServer.port} (${ms(tListening - tUp)} to listen); calls served again after: ${closing
                .map((p) => `${p.label} ${ms(firstAfter(p.results, tListening, (r) => r.ok).done - tListening)}`)
                .join(', ')}`,
        );
        await waitFor(async () => (await readyzAll(fleet.gates)).every((r) => r.status === 200), {
            timeoutMs: 15000,
            intervalMs: 50,
            message: '/readyz 200 on every replica after the restart',
        });
        const tReady = performance.now();
        console.log(`  /readyz 200 on every replica ${ms(tReady - tListening)} after Redis listened again`);
        try {
            await callsSince(all, tReady, { n: 3 });
        } catch (err) {
            err.message += `\n${trace(all, tListening, 'Redis listened again')}`;
            throw err;
        }
        for (const p of all) {
            const late = sentSince(p, tReady);
            assert.ok(late.every((r) => r.ok), `${p.label}: served after recovery: ${describe(late.find((r) => !r.ok))}`);
        }
    } finally {
        await Promise.all(all.map((p) => p.stop()));
        if (!p2Stopped) await Promise.all(p2Load.map((p) => p.stop()));
        if (!restarted && !fleet.redisServer.running()) await fleet.redisServer.restart();
    }
    assert.deepEqual(fleet.gates.map((g) => g.proc.pid), pidsBefore, 'no replica was restarted');
    assert.ok(fleet.gates.every((g) => g.running()), 'every replica still running');

    // the kill switches are watched again: a plain SET is seen by every replica
    redis = await redisClient(fleet.redisUrl);
    assert.equal(await redis.get('sg:{perm}:killswitch:perm-2'), '1', 'Redis came back with its keys');
    // the replicas subscribed to sg:events again (events, not only polling, after a reconnect)
    const resubscribed = await waitFor(
        async () => {
            const n = (await redis.pubSubNumSub('sg:events'))['sg:events'];
            return n >= subscribersBefore ? n : false;
        },
        { timeoutMs: 10000, intervalMs: 100, message: `${subscribersBefore} subscribers to sg:events again` },
    );
    console.log(`  sg:events subscribers: ${subscribersBefore} before the outage, ${resubscribed} after`);
    await redis.del('sg:{perm}:killswitch:perm-2');
    const peers = await perReplica(KEY.p1);
    await redis.set('sg:killswitch', '1');
    try {
        await untilEveryReplica(peers, (r) => r.code === KILLED && r.scope === 'global', { timeoutMs: 3000, message: 'global switch seen after recovery' });
    } finally {
        await redis.del('sg:killswitch');
    }
    await untilEveryReplica(peers, (r) => r.ok, { timeoutMs: 3000, message: 'released after recovery' });
});

/* ------------------------------------------------------------------------------------------
 * 5. A replica killed with SIGKILL under load
 * ---------------------------------------------------------------------------------------- */

test('a replica killed with SIGKILL: haproxy routes around it and agents keep their sessions', async () => {
    const keys = [KEY.a1, KEY.a2, KEY.p1, KEY.a1, KEY.a2, KEY.p1];
    const traffic = await startAgents({
        url: fleet.url,
        label: 'failover',
        tool: ECHO,
        maxMs: 30000,
        agents: keys.map((key, i) => ({ key, name: `failover-${i}` })),
    });
    const sessions = traffic.sessions;
    assert.ok(sessions.length === keys.length && sessions.every((s) => typeof s === 'string' && s.length > 0), 'every agent has a session');
    const victim = fleet.gates[2];
    const survivors = fleet.gates.filter((g) => g !== victim);
    const upstreamPids = ['acme', 'strict', 'perm'].flatMap((t) => spawnedPids(victim, t, 'ev'));
    assert.ok(upstreamPids.length >= 3, `the victim's upstream processes, from its log: ${upstreamPids}`);
    const before = Object.fromEntries((await fleet.lb.stats()).filter((r) => r.pxname === 'gates').map((r) => [r.svname, Number(r.stot)]));

    let tKill;
    let tDown = null;
    try {
        await sleep(700);
        assert.ok(traffic.results.length > 0 && traffic.results.every((r) => r.ok), `served before the kill: ${describe(traffic.results.find((r) => !r.ok))}`);
        tKill = performance.now();
        await victim.kill(); // SIGKILL, waits for the exit
        await fleet.waitLbServers((s) => s[`gates/${victim.name}`]?.startsWith('DOWN'), { timeoutMs: 5000, message: `haproxy marks ${victim.name} DOWN` });
        tDown = performance.now();
        await sleep(1000);
        await callsSince([traffic], tDown, { n: 3, perLoop: true });
    } finally {
        await traffic.stop();
    }
    const sinceKill = traffic.since(tKill);
    const failed = sinceKill.filter((r) => !r.ok);
    const afterDown = sentSince(traffic, tDown);
    console.log(
        `SIGKILL of ${victim.name}: haproxy marked it DOWN after ${ms(tDown - tKill)}; ` +
            `${failed.length} of ${sinceKill.length} calls failed from the kill on (${traffic.results.length} calls in all)` +
            (failed.length ? `: ${[...new Set(failed.map(describe))].join(' | ')}` : ''),
    );
    const stats = (await fleet.lb.stats()).filter((r) => r.pxname === 'gates' && r.svname !== 'BACKEND');
    console.log(`  haproxy sessions per replica during the test: ${stats.map((r) => `${r.svname} +${Number(r.stot) - (before[r.svname] ?? 0)} (${r.status})`).join(', ')}`);

    assert.ok(afterDown.length > 0, 'calls continue after the switch-over');
    assert.equal(afterDown.filter((r) => !r.ok).length, 0, `every call succeeds once haproxy routed around: ${describe(afterDown.find((r) => !r.ok))}`);
    sessions.forEach((sid, i) => {
        assert.equal(traffic.finalSessions?.[i], sid, `agent ${i} keeps its Mcp-Session-Id`);
        const other = traffic.results.filter((r) => r.loop === i && r.session !== sid);
        assert.equal(other.length, 0, `agent ${i}: every call on its first session`);
        assert.ok(afterDown.some((r) => r.loop === i && r.ok), `agent ${i} is served on the remaining replicas`);
    });
    const states = await fleet.lb.servers();
    for (const g of survivors) assert.equal(states[`gates/${g.name}`], 'UP', `${g.name} stays UP`);
    for (const g of survivors) assert.ok(g.running(), `${g.name} running`);

    // the killed replica's stdio upstreams do not outlive it
    await waitFor(() => upstreamPids.every((pid) => !processAlive(pid)), {
        timeoutMs: 10000,
        intervalMs: 100,
        message: `upstream processes of the killed replica (${upstreamPids.join(',')}) exit`,
    });
});
