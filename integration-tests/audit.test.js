// SPDX-License-Identifier: Apache-2.0
//
// The audit pipeline end to end (issue 6 "Done when", DESIGN §6, docs/AUDIT.md,
// docs/ADMIN-API.md "Audit"): `sentinel-gate control` and gate replicas on one Redis and one
// PostgreSQL (ops/lib/pgcluster), server-everything over stdio as the upstream, raw Streamable
// HTTP clients on kept-alive connections as the agents.
//
//   1. many calls through two replicas while PostgreSQL is stopped in the middle: afterwards
//      rows = calls per replica, no duplicate ids, seq 1..N in ts order per replica, every
//      request id once, `audit verify` exits 0 (calls, outage and replay time are printed)
//   2. a replica of a tenant in audit sync mode killed with SIGKILL under load: every call whose
//      response the client received has its row (matched by request id)
//   3. one row changed with UPDATE (append-only trigger disabled first): `audit verify` exits 1
//      and names that row's id; the row restored, it passes again
//   4. allowed, denied, approval, kill-switch, upstream-failure, timeout, cancelled,
//      unknown-tool, resource, prompt and authentication-failure outcomes each have a row with
//      the right decision; refusals' data.audit_id = row id
//  4b. the same for upstream failures of a tenant in audit sync mode
//   5. GET /admin/api/v1/audit: filters, keyset pagination, csv (formula cells neutralised),
//      jsonl, bad parameters → 400
//   6. secrets in arguments (`api_token` and friends) are stored as "[redacted]" and appear in
//      no row, no spool file and no log line
//
// Sizes (environment): SG_AUDIT_CALLS (default 20000), SG_AUDIT_OUTAGE_MS (default 30000).
//
// Run: node --test --test-concurrency=1 integration-tests/audit.test.js

import { test, before, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { request, sleep, tempDir, waitFor, withPg } from './lib/harness.js';
import { logTail } from './lib/mcp.js';
import {
    auditCount,
    auditRows,
    auditVerify,
    chainProblems,
    crashingUpstream,
    everything,
    keepAliveAgent,
    keyFor,
    openSession,
    startReplica,
    startStack,
    waitAuditRow,
} from './lib/audit.js';

const CALLS = Number(process.env.SG_AUDIT_CALLS || 20000);
const OUTAGE_MS = Number(process.env.SG_AUDIT_OUTAGE_MS || 30000);
const PRE_MS = 8000; // calls before PostgreSQL stops
const POST_MS = 8000; // and after it is back (the pacing plan; a slower gate just takes longer)
const CONCURRENCY = 16;

const DENIED = -31001;
const KILLED = -31003;
const UPSTREAM = -31006;

let stack;
let gateMain; // replica "main": tests 3-6
const keys = {};
const watched = []; // processes that must not die

const SECRETS = {
    top: `sk-live-${crypto.randomBytes(12).toString('hex')}`,
    nested: `nested-${crypto.randomBytes(12).toString('hex')}`,
    bearer: `bearer-${crypto.randomBytes(12).toString('hex')}`,
    denied: `denied-${crypto.randomBytes(12).toString('hex')}`,
    badKey: `zq${crypto.randomBytes(3).toString('hex')}${crypto.randomBytes(16).toString('hex')}`, // an unknown API key (test 4)
};

const tenants = {
    load: { tenant: 'aud-load', profile: 'permissive', upstreams: [everything('ev')], identities: [{ name: 'load' }] },
    sync: {
        tenant: 'aud-sync',
        profile: 'permissive',
        upstreams: [everything('ev')],
        identities: [{ name: 'sync' }],
        audit: { mode: 'sync' },
    },
    tamper: { tenant: 'aud-tamper', profile: 'permissive', upstreams: [everything('ev')], identities: [{ name: 't' }] },
    misc: () => ({
        tenant: 'aud-misc',
        profile: 'standard',
        upstreams: [everything('ev'), everything('slow', { timeout_ms: 500 }), crashingUpstream('bad')],
        identities: [{ name: 'm' }, { name: 'm2' }],
        policies: [
            {
                name: 'no-forbidden',
                priority: 10,
                action: 'deny',
                reason: 'forbidden word',
                match: { tool: 'ev__echo', args: { message: { regex: 'forbidden' } } },
            },
        ],
    }),
    syncBad: () => ({
        tenant: 'aud-sync-bad',
        profile: 'permissive',
        upstreams: [crashingUpstream('bad'), everything('slow', { timeout_ms: 500 })],
        identities: [{ name: 'sb' }],
        audit: { mode: 'sync' },
    }),
    strict: {
        tenant: 'aud-strict',
        profile: 'strict',
        upstreams: [everything('ev')],
        identities: [{ name: 'st' }],
        classes: { ev__echo: 'destructive' },
        policies: [{ name: 'echo-allowed', priority: 10, action: 'allow', match: { tool: 'ev__echo' } }],
    },
    q: {
        tenant: 'aud-q',
        profile: 'permissive',
        upstreams: [everything('ev')],
        identities: [{ name: 'q1' }, { name: 'q2' }],
        policies: [
            {
                name: 'formula-rule',
                priority: 10,
                action: 'deny',
                reason: '=HYPERLINK("http://evil.example/","click")',
                match: { tool: 'ev__echo', args: { message: { regex: '^deny-me' } } },
            },
        ],
    },
    secret: {
        tenant: 'aud-secret',
        profile: 'permissive',
        upstreams: [everything('ev')],
        identities: [{ name: 'sec' }],
        policies: [{ name: 'deny-me', priority: 10, action: 'deny', match: { tool: 'ev__echo', args: { message: { regex: '^deny-me' } } } }],
    },
};

/** Calls ev__echo on session until it answers with a result (the upstream starts after the bootstrap). */
async function waitEcho(session, ids, tool = 'ev__echo') {
    return waitFor(
        async () => {
            const id = ids.next();
            const r = await session.call(tool, { message: 'warm-up' }, id);
            ids.used.push(id);
            return r.response?.result && !r.response.result.isError ? r : false;
        },
        { timeoutMs: 30000, intervalMs: 200, message: `${tool} answers` },
    );
}

/** Request ids from base upward; `used` keeps those that were sent. */
function idSource(base) {
    let n = base;
    return { used: [], next: () => n++ };
}

/** Waits until <spoolDir>/audit.spool is empty or absent (replayed into PostgreSQL). */
async function waitSpoolEmpty(spoolDir, timeoutMs = 60000) {
    await waitFor(
        () => {
            try {
                return fs.statSync(path.join(spoolDir, 'audit.spool')).size === 0;
            } catch {
                return true;
            }
        },
        { timeoutMs, intervalMs: 100, message: `${spoolDir}/audit.spool replayed` },
    );
}

/** Sends sync calls on every session until stop() is called or a call fails (the replica died). */
function syncLoad(sessions, firstId, answered) {
    const st = { failed: [], refused: [], stopped: false };
    let next = firstId;
    st.loops = sessions.map(async (s) => {
        while (!st.stopped) {
            const id = next++;
            try {
                const r = await s.call('ev__echo', { message: `sync-${id}` }, id, { timeout: 10000 });
                if (r.response?.result) answered.push(id);
                else st.refused.push(`${id}: ${r.raw.body.slice(0, 200)}`);
            } catch (err) {
                st.failed.push(err.code || err.message);
                return;
            }
        }
    });
    return st;
}

before(async () => {
    stack = await startStack();
    const answers = {};
    for (const [name, payload] of Object.entries(tenants)) {
        answers[name] = await stack.admin.bootstrap(typeof payload === 'function' ? payload() : payload);
    }
    keys.load = keyFor(answers.load, 'load');
    keys.sync = keyFor(answers.sync, 'sync');
    keys.t = keyFor(answers.tamper, 't');
    keys.m = keyFor(answers.misc, 'm');
    keys.m2 = keyFor(answers.misc, 'm2');
    keys.st = keyFor(answers.strict, 'st');
    keys.sb = keyFor(answers.syncBad, 'sb');
    keys.q1 = keyFor(answers.q, 'q1');
    keys.q2 = keyFor(answers.q, 'q2');
    keys.sec = keyFor(answers.secret, 'sec');
    // debug logging on the replica that sees the secrets: "no log line" covers every level
    gateMain = await startReplica(stack, { env: { SG_REPLICA_ID: 'main', SG_LOG_LEVEL: 'debug' } });
    watched.push(['control', stack.control], ['replica main', gateMain]);
});

afterEach(() => {
    for (const [name, p] of watched) {
        if (p && !p.running()) assert.fail(`${name} died (${p.proc.signalCode ?? p.proc.exitCode}):\n${logTail(p)}`);
    }
});

/* ---------------------------------------------------------------------------------------- */

test('1. calls through two replicas while PostgreSQL is stopped: rows = calls, chains intact', { timeout: 300000 }, async () => {
    // (the harness' handle carries its own replicaId; ours is the SG_REPLICA_ID we pass)
    const gates = await Promise.all(
        ['load-a', 'load-b'].map(async (id) => Object.assign(await startReplica(stack, { env: { SG_REPLICA_ID: id } }), { replicaId: id })),
    );
    watched.push(...gates.map((g) => [`replica ${g.replicaId}`, g]));
    const sent = new Map(gates.map((g) => [g.replicaId, []])); // request ids answered, per replica
    const sessions = [];
    for (const g of gates) {
        const agent = keepAliveAgent(CONCURRENCY / gates.length);
        for (let i = 0; i < CONCURRENCY / gates.length; i++) sessions.push({ g, s: await openSession(g.url, keys.load, { agent }) });
    }
    for (const g of gates) {
        const ids = idSource(g === gates[0] ? 1 : 1001);
        await waitEcho(sessions.find((x) => x.g === g).s, ids);
        sent.get(g.replicaId).push(...ids.used);
    }

    // the plan: CALLS spread evenly over PRE + OUTAGE + POST (a slower gate takes longer)
    const planMs = PRE_MS + OUTAGE_MS + POST_MS;
    const perMs = CALLS / planMs;
    let next = 0;
    const transportErrors = [];
    const notResults = [];
    const t0 = performance.now();
    const timeline = {};
    let maxSpool = 0;
    let callsDuringOutage = 0;
    let outage = false;

    const controller = (async () => {
        await sleep(PRE_MS);
        timeline.stopBegin = performance.now();
        timeline.callsBeforeStop = next;
        await stack.pg.stop();
        timeline.stopDone = performance.now();
        outage = true;
        while (performance.now() < timeline.stopDone + OUTAGE_MS) {
            for (const g of gates) {
                try {
                    maxSpool = Math.max(maxSpool, fs.statSync(path.join(g.spoolDir, 'audit.spool')).size);
                } catch {
                    /* not yet created */
                }
            }
            await sleep(200);
        }
        outage = false;
        timeline.startBegin = performance.now();
        await stack.pg.restart();
        timeline.startDone = performance.now();
        // replay: the spool files are truncated once they have been written into PostgreSQL
        const until = performance.now() + 150000;
        while (performance.now() < until) {
            const sizes = gates.map((g) => {
                try {
                    return fs.statSync(path.join(g.spoolDir, 'audit.spool')).size;
                } catch {
                    return 0;
                }
            });
            if (sizes.every((n) => n === 0)) {
                timeline.spoolEmpty = performance.now();
                break;
            }
            await sleep(100);
        }
    })();

    await Promise.all(
        sessions.map(async ({ g, s }) => {
            for (;;) {
                const k = next++;
                if (k >= CALLS) return;
                const wait = t0 + k / perMs - performance.now();
                if (wait > 0) await sleep(wait);
                const id = 100000 + k;
                const during = outage;
                let r;
                try {
                    r = await s.call('ev__echo', { message: `load-${k}` }, id, { timeout: 30000 });
                } catch (err) {
                    transportErrors.push(`${id}: ${err.message}`);
                    continue;
                }
                sent.get(g.replicaId).push(id);
                if (during) callsDuringOutage++;
                if (!r.response?.result || r.response.result.isError) notResults.push(`${id}: ${r.status} ${r.raw.body.slice(0, 200)}`);
            }
        }),
    );
    const callsDone = performance.now();
    await controller;
    const total = [...sent.values()].reduce((a, l) => a + l.length, 0);

    // the spool is replayed once PostgreSQL is back: poll the row count (bounded)
    const replicaIds = gates.map((g) => g.replicaId);
    let rows = 0;
    let countError = null;
    const replayDeadline = performance.now() + 150000;
    while (performance.now() < replayDeadline) {
        try {
            rows = await auditCount(stack.dbUrl, 'replica = ANY($1)', [replicaIds]);
            countError = null;
        } catch (err) {
            countError = err; // PostgreSQL still starting
        }
        if (rows >= total) break;
        await sleep(250);
    }
    const replayedAt = performance.now();
    const s = (a, b) => ((b - a) / 1000).toFixed(1);
    console.log(
        `audit load: ${total} calls (${CALLS} planned + warm-ups) at concurrency ${CONCURRENCY} over ${gates.length} replicas in ${s(t0, callsDone)} s; ` +
            `PostgreSQL stopped after ${timeline.callsBeforeStop} calls, down ${s(timeline.stopBegin, timeline.startDone)} s ` +
            `(stop ${s(timeline.stopBegin, timeline.stopDone)} s, fully down ${s(timeline.stopDone, timeline.startBegin)} s, start ${s(timeline.startBegin, timeline.startDone)} s); ` +
            `${callsDuringOutage} calls answered while it was down; largest spool ${maxSpool} bytes; ` +
            `spool replayed (files empty) ${timeline.spoolEmpty ? `${s(timeline.startDone, timeline.spoolEmpty)} s` : 'never'} after PostgreSQL was back; ` +
            `rows complete ${s(timeline.startDone, replayedAt)} s after PostgreSQL was back (${s(callsDone, replayedAt)} s after the last call)`,
    );

    assert.deepEqual(transportErrors.slice(0, 5), [], `${transportErrors.length} calls failed at the HTTP level`);
    assert.deepEqual(notResults.slice(0, 5), [], `${notResults.length} calls were not answered with a result (audit async: calls are served during the outage)`);
    assert.ok(callsDuringOutage > 0, 'calls were made while PostgreSQL was down');
    assert.ok(maxSpool > 0, 'the replicas spooled while PostgreSQL was down');
    assert.ok(timeline.spoolEmpty, 'the spool files were replayed and emptied');
    assert.equal(rows, total, `audit rows of the load replicas after replay (${s(timeline.startDone, replayedAt)} s)${countError ? `; last count error: ${countError.message}` : ''}`);

    const stats = await withPg(stack.dbUrl, async (c) =>
        (
            await c.query(
                `SELECT replica, count(*)::int AS n, count(DISTINCT id)::int AS ids, count(DISTINCT seq)::int AS seqs,
                        min(seq)::int AS lo, max(seq)::int AS hi, count(DISTINCT request_id)::int AS reqs,
                        count(*) FILTER (WHERE tenant <> 'aud-load' OR decision <> 'allow')::int AS odd
                 FROM audit_events WHERE replica = ANY($1) GROUP BY replica ORDER BY replica`,
                [replicaIds],
            )
        ).rows,
    );
    for (const g of gates) {
        const want = sent.get(g.replicaId).length;
        const st = stats.find((x) => x.replica === g.replicaId);
        assert.ok(st, `rows of ${g.replicaId}`);
        assert.deepEqual(st, { replica: g.replicaId, n: want, ids: want, seqs: want, lo: 1, hi: want, reqs: want, odd: 0 }, `${g.replicaId}: rows = calls, unique ids, seq 1..N`);
        const chain = await auditRows(stack.dbUrl, 'replica = $1', [g.replicaId], 'seq, ts, request_id');
        assert.deepEqual(chainProblems(chain), [], `${g.replicaId}: seq 1..N in ts order`);
        const got = new Set(chain.map((r) => r.request_id));
        const missing = sent.get(g.replicaId).filter((id) => !got.has(String(id)));
        assert.deepEqual(missing.slice(0, 10), [], `${g.replicaId}: every request id has its row (${missing.length} missing)`);
    }
    const dupIds = await withPg(stack.dbUrl, async (c) => (await c.query('SELECT id FROM audit_events GROUP BY id HAVING count(*) > 1 LIMIT 5')).rows);
    assert.deepEqual(dupIds, [], 'no duplicate ids in the table');

    const v = await auditVerify(stack.dbUrl, ['--tenant', 'aud-load']);
    console.log(`audit verify --tenant aud-load (${v.ms} ms): ${v.stdout.trim()}`);
    assert.equal(v.code, 0, `audit verify --tenant aud-load:\n${v.stdout}\n${v.stderr}`);
    const all = await auditVerify(stack.dbUrl);
    assert.equal(all.code, 0, `audit verify:\n${all.stdout}\n${all.stderr}`);

    // a clean stop (SIGTERM) drains: still nothing lost
    for (const g of gates) {
        const r = await g.stop();
        assert.equal(r.code, 0, `${g.replicaId} stopped cleanly: ${JSON.stringify(r)}`);
        watched.splice(watched.findIndex((w) => w[1] === g), 1);
    }
    assert.equal(await auditCount(stack.dbUrl, 'replica = ANY($1)', [replicaIds]), total);
});

test('2. sync mode: a replica killed with SIGKILL under load has the row of every answered call', async () => {
    const spoolDir = tempDir('sync-spool-');
    const env = { SG_REPLICA_ID: 'sync-1', SG_SPOOL_DIR: spoolDir };
    const g = await startReplica(stack, { env });
    const agent = keepAliveAgent(CONCURRENCY);
    const sessions = [];
    for (let i = 0; i < CONCURRENCY; i++) sessions.push(await openSession(g.url, keys.sync, { agent }));
    const ids = idSource(1);
    await waitEcho(sessions[0], ids);
    const answered = [...ids.used];
    const load = syncLoad(sessions, 500000, answered);
    await waitFor(() => answered.length >= 1500 || load.failed.length > 0, { timeoutMs: 30000, intervalMs: 20, message: '1500 answered sync calls' });
    const k = await g.kill();
    load.stopped = true;
    await Promise.all(load.loops);
    assert.equal(k.signal, 'SIGKILL', JSON.stringify(k));
    assert.deepEqual(load.refused.slice(0, 5), [], 'sync calls are served while PostgreSQL is up');

    const rowIds = async () => new Set((await auditRows(stack.dbUrl, 'replica = $1', ['sync-1'], 'request_id')).map((r) => r.request_id));
    let have = await rowIds();
    const missingAtKill = answered.filter((id) => !have.has(String(id)));
    // what was durable only in the spool at the kill reaches PostgreSQL when a replica starts on it
    const g2 = await startReplica(stack, { env });
    await waitSpoolEmpty(spoolDir);
    have = await rowIds();
    const missing = answered.filter((id) => !have.has(String(id)));
    const n = await auditCount(stack.dbUrl, 'replica = $1', ['sync-1']);
    const v = await auditVerify(stack.dbUrl, ['--tenant', 'aud-sync']);
    console.log(
        `audit sync kill: ${answered.length} calls answered before SIGKILL, ${load.failed.length} in flight cut off; ` +
            `rows of sync-1: ${n}; answered calls without a row in PostgreSQL right after the kill: ${missingAtKill.length}, ` +
            `after a replica restarted on the spool: ${missing.length}; audit verify --tenant aud-sync exit ${v.code}: ${v.stdout.trim()}`,
    );
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} answered calls have no audit row`);
    assert.ok(n >= answered.length, `rows ${n} >= answered ${answered.length}`);
    // the sync row is written before the call goes upstream: it carries the decision, no result
    const sample = await auditRows(stack.dbUrl, 'replica = $1 AND request_id = $2', ['sync-1', String(answered[answered.length - 1])]);
    assert.equal(sample.length, 1);
    assert.equal(sample[0].decision, 'allow');
    assert.equal(sample[0].result_size, null);
    assert.equal(sample[0].tenant, 'aud-sync');
    const dups = await withPg(stack.dbUrl, async (c) =>
        (await c.query(`SELECT request_id FROM audit_events WHERE replica = 'sync-1' GROUP BY request_id HAVING count(*) > 1 LIMIT 5`)).rows,
    );
    assert.deepEqual(dups, [], 'one row per call');
    await g2.stop();
});

test('2b. sync mode while PostgreSQL is down: SIGKILL, then every answered call has its row once replayed', async () => {
    const spoolDir = tempDir('sync2-spool-');
    const env = { SG_REPLICA_ID: 'sync-2', SG_SPOOL_DIR: spoolDir };
    const g = await startReplica(stack, { env });
    const agent = keepAliveAgent(CONCURRENCY);
    const sessions = [];
    for (let i = 0; i < CONCURRENCY; i++) sessions.push(await openSession(g.url, keys.sync, { agent }));
    const ids = idSource(1);
    await waitEcho(sessions[0], ids);
    const answered = [...ids.used];
    const load = syncLoad(sessions, 800000, answered);
    await waitFor(() => answered.length >= 300, { timeoutMs: 30000, intervalMs: 20, message: '300 answered sync calls' });
    let killed = false;
    try {
        await stack.pg.stop();
        const atStop = answered.length;
        // durable now means fsynced to the spool: calls go on (after the write timeout of the
        // batches in flight when PostgreSQL went away)
        await waitFor(() => answered.length >= atStop + 500 || load.failed.length > 0, {
            timeoutMs: 30000,
            intervalMs: 20,
            message: '500 sync calls answered while PostgreSQL is down',
        });
        const spooled = fs.statSync(path.join(spoolDir, 'audit.spool')).size;
        const k = await g.kill();
        killed = true;
        load.stopped = true;
        await Promise.all(load.loops);
        assert.equal(k.signal, 'SIGKILL');
        console.log(`audit sync kill while PostgreSQL is down: ${answered.length - atStop} of ${answered.length} answered calls after the stop; spool ${spooled} bytes at the kill; ${load.failed.length} in flight cut off`);
    } finally {
        if (!killed) {
            load.stopped = true;
            await g.kill();
        }
        await stack.pg.restart();
    }
    assert.deepEqual(load.refused.slice(0, 5), [], 'sync calls are served from the spool while PostgreSQL is down');
    const g2 = await startReplica(stack, { env });
    await waitSpoolEmpty(spoolDir);
    const have = new Set((await auditRows(stack.dbUrl, 'replica = $1', ['sync-2'], 'request_id')).map((r) => r.request_id));
    const missing = answered.filter((id) => !have.has(String(id)));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${answered.length} answered calls have no audit row`);
    const v = await auditVerify(stack.dbUrl, ['--tenant', 'aud-sync']);
    console.log(`audit verify --tenant aud-sync after the replay: exit ${v.code}: ${v.stdout.trim()}`);
    await g2.stop();
});

test('3. a row changed with UPDATE: audit verify exits 1 and names it', async () => {
    const s = await openSession(gateMain.url, keys.t);
    const ids = idSource(1);
    await waitEcho(s, ids);
    for (let i = 0; i < 20; i++) {
        const r = await s.call('ev__echo', { message: `tamper-${i}` }, 7000 + i);
        assert.ok(r.response?.result, r.raw.body);
    }
    const total = ids.used.length + 20;
    await waitFor(async () => (await auditCount(stack.dbUrl, "tenant = 'aud-tamper'")) === total, { timeoutMs: 10000, message: 'tamper rows' });
    const before = await auditVerify(stack.dbUrl, ['--tenant', 'aud-tamper']);
    assert.equal(before.code, 0, `before: ${before.stdout}${before.stderr}`);

    const victim = (await auditRows(stack.dbUrl, "tenant = 'aud-tamper' AND request_id = '7010'"))[0];
    assert.ok(victim, 'the row of request 7010');
    // the table refuses UPDATE
    await withPg(stack.dbUrl, async (c) => {
        await assert.rejects(c.query("UPDATE audit_events SET reason = 'tampered' WHERE id = $1", [victim.id]), /append-only/);
    });
    const update = (reason) =>
        withPg(stack.dbUrl, async (c) => {
            await c.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
            try {
                const r = await c.query('UPDATE audit_events SET reason = $2 WHERE id = $1', [victim.id, reason]);
                assert.equal(r.rowCount, 1);
            } finally {
                await c.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
            }
        });
    await update('tampered');
    try {
        const v = await auditVerify(stack.dbUrl, ['--tenant', 'aud-tamper']);
        console.log(`audit verify after UPDATE of ${victim.id} (seq ${victim.seq} of ${victim.replica}): exit ${v.code}\n${v.stdout.trim()}`);
        assert.equal(v.code, 1, `${v.stdout}${v.stderr}`);
        assert.ok(v.stdout.includes(victim.id) || v.stderr.includes(victim.id), `the report names ${victim.id}:\n${v.stdout}${v.stderr}`);
        assert.match(v.stdout + v.stderr, new RegExp(`BROKEN at seq ${victim.seq}\\b`));
        assert.match(v.stdout + v.stderr, /content hash mismatch/);
        const whole = await auditVerify(stack.dbUrl);
        assert.equal(whole.code, 1, `without --tenant too:\n${whole.stdout}`);
        assert.ok(whole.stdout.includes(victim.id), whole.stdout);
    } finally {
        await update(victim.reason);
    }
    const restored = await auditVerify(stack.dbUrl, ['--tenant', 'aud-tamper']);
    assert.equal(restored.code, 0, `restored: ${restored.stdout}${restored.stderr}`);
});

test('4. every outcome has its row with the right decision; refusals carry the row id', async () => {
    const s = await openSession(gateMain.url, keys.m);
    const s2 = await openSession(gateMain.url, keys.m2);
    const ids = idSource(1);
    await waitEcho(s, ids);
    await waitEcho(s, ids, 'bad__ok');
    await waitEcho(s2, ids);
    await waitEcho(s, ids, 'slow__echo');

    const rowOf = async (reqId) =>
        waitFor(async () => (await auditRows(stack.dbUrl, "tenant = 'aud-misc' AND request_id = $1", [JSON.stringify(reqId)]))[0], {
            timeoutMs: 10000,
            intervalMs: 50,
            message: `row of request ${JSON.stringify(reqId)}`,
        });
    const refusal = async (r, code, decision, what) => {
        const e = r.response?.error;
        assert.ok(e, `${what}: a refusal, got ${r.raw.body.slice(0, 300)}`);
        assert.equal(e.code, code, `${what}: ${JSON.stringify(e)}`);
        assert.match(String(e.data?.audit_id), /^[0-9a-f-]{36}$/, `${what}: data.audit_id ${JSON.stringify(e)}`);
        const row = await waitAuditRow(stack.dbUrl, e.data.audit_id);
        assert.equal(row.id, e.data.audit_id);
        assert.equal(row.decision, decision, `${what}: ${JSON.stringify(row)}`);
        assert.equal(row.request_id, JSON.stringify(r.response.id));
        return { e, row };
    };

    // allowed, with the result summarised
    const ok = await s.call('ev__echo', { message: 'fine' }, 'req-allow');
    assert.ok(ok.response?.result, ok.raw.body);
    const okRow = await rowOf('req-allow');
    assert.equal(okRow.decision, 'allow');
    assert.equal(okRow.identity, 'm');
    assert.equal(okRow.method, 'tools/call');
    assert.equal(okRow.tool, 'ev__echo');
    assert.equal(okRow.upstream, 'ev');
    assert.equal(okRow.class, 'read');
    assert.equal(okRow.result_is_error, false);
    assert.equal(okRow.result_size, JSON.stringify(ok.response.result).length);
    assert.deepEqual(okRow.arguments, { message: 'fine' });
    assert.ok(Number(okRow.upstream_latency_us) > 0 && Number(okRow.gate_latency_us) >= 0, JSON.stringify(okRow));
    assert.ok(okRow.session && !okRow.session.includes('.'), `session is the nonce: ${okRow.session}`);

    // an upstream isError result is relayed and recorded as such
    const isErr = await s.call('ev__get-sum', { a: 'not a number' }, 'req-iserror');
    const isErrRow = await rowOf('req-iserror');
    assert.equal(isErrRow.decision, 'allow');
    assert.equal(isErrRow.result_is_error, true, `${isErr.raw.body.slice(0, 200)} -> ${JSON.stringify(isErrRow)}`);

    // denied by policy
    const { row: denyRow } = await refusal(await s.call('ev__echo', { message: 'a forbidden word' }, 'req-deny'), DENIED, 'deny', 'deny');
    assert.equal(denyRow.rule, 'no-forbidden');
    assert.equal(denyRow.reason, 'forbidden word');
    assert.equal(denyRow.result_size, null);
    assert.equal(denyRow.upstream_latency_us, null);

    // standard profile: a destructive call with no rule (hidden: refused like an unknown tool)
    const unknown = await refusal(await s.call('ev__no-such-tool', {}, 'req-unknown'), -32602, 'error', 'unknown tool');
    assert.equal(unknown.row.tool, 'ev__no-such-tool');

    // kill switches: identity scope (m2 only), then tenant scope; tools/call and resources/read
    const ks = async (body) => {
        const r = await stack.admin.post('/killswitch', { reason: 'audit test', ...body });
        assert.equal(r.status, 200, r.body);
    };
    await ks({ scope: 'identity', tenant: 'aud-misc', identity: 'm2', engaged: true });
    let seq = 0;
    const killedCall = await waitFor(
        async () => {
            const r = await s2.call('ev__echo', { message: 'x' }, `req-killed-${++seq}`);
            return r.response?.error?.code === KILLED ? r : false;
        },
        { timeoutMs: 3000, intervalMs: 20, message: 'identity kill switch seen' },
    );
    const killed = await refusal(killedCall, KILLED, 'killed', 'identity kill switch');
    assert.equal(killed.e.data.scope, 'identity');
    assert.equal(killed.row.identity, 'm2');
    const stillOk = await s.call('ev__echo', { message: 'm is not killed' }, 'req-m-ok');
    assert.ok(stillOk.response?.result, stillOk.raw.body);
    await ks({ scope: 'tenant', tenant: 'aud-misc', engaged: true });
    const tk = await waitFor(
        async () => {
            const r = await s.rpc('resources/read', { uri: 'demo://resource/static/document/architecture.md' }, `req-tkill-${++seq}`);
            return r.response?.error?.code === KILLED ? r : false;
        },
        { timeoutMs: 3000, intervalMs: 20, message: 'tenant kill switch seen' },
    );
    const tkilled = await refusal(tk, KILLED, 'killed', 'tenant kill switch (resources/read)');
    assert.equal(tkilled.e.data.scope, 'tenant');
    assert.equal(tkilled.row.method, 'resources/read');
    await ks({ scope: 'tenant', tenant: 'aud-misc', engaged: false });
    await ks({ scope: 'identity', tenant: 'aud-misc', identity: 'm2', engaged: false });
    await waitFor(async () => (await s2.call('ev__echo', { message: 'back' }, `req-back-${++seq}`)).response?.result, {
        timeoutMs: 3000,
        intervalMs: 20,
        message: 'kill switches released',
    });

    // upstream failures: the process exits during the call; the call outlives its timeout
    const crash = await refusal(await s.call('bad__crash', { x: '1' }, 'req-crash'), UPSTREAM, 'upstream_error', 'upstream crash');
    assert.equal(crash.e.data.upstream, 'bad');
    assert.equal(crash.row.upstream, 'bad');
    const slow = await refusal(
        await s.call('slow__trigger-long-running-operation', { duration: 3, steps: 3 }, 'req-timeout', { timeout: 10000 }),
        UPSTREAM,
        'timeout',
        'upstream timeout',
    );
    assert.equal(slow.row.upstream, 'slow');

    // cancelled by the agent while the upstream works on it
    const long = s.call('ev__trigger-long-running-operation', { duration: 5, steps: 5 }, 'req-cancel', { timeout: 15000 });
    await sleep(500);
    const note = await s.notify('notifications/cancelled', { requestId: 'req-cancel', reason: 'changed my mind' });
    assert.equal(note.status, 202, note.body);
    const cancelled = await long;
    const cancelRow = await rowOf('req-cancel');
    assert.equal(cancelRow.decision, 'cancelled', `${cancelled.raw.body.slice(0, 300)} -> ${JSON.stringify(cancelRow)}`);

    // strict: an allowed destructive call is held for approval (fails closed until the approval flow)
    const st = await openSession(gateMain.url, keys.st);
    const approval = await waitFor(
        async () => {
            const r = await st.call('ev__echo', { message: 'destructive by class' }, `req-approve-${++seq}`);
            return r.response?.error?.code === -31002 ? r : false;
        },
        { timeoutMs: 30000, intervalMs: 200, message: 'approval required from aud-strict' },
    );
    const approvalRow = (await refusal(approval, -31002, 'approval_required', 'approval required')).row;
    assert.equal(approvalRow.rule, 'echo-allowed');
    assert.equal(approvalRow.class, 'destructive');

    // reads: resources/read and prompts/get are audited too
    const list = await s.rpc('resources/list', {}, 'req-rlist');
    const uri = list.response?.result?.resources?.[0]?.uri;
    assert.ok(uri, list.raw.body.slice(0, 300));
    const read = await s.rpc('resources/read', { uri }, 'req-read');
    assert.ok(read.response?.result, read.raw.body.slice(0, 300));
    const readRow = await rowOf('req-read');
    assert.equal(readRow.method, 'resources/read');
    assert.equal(readRow.tool, uri);
    assert.equal(readRow.decision, 'allow');
    const prompt = await s.rpc('prompts/get', { name: 'ev__simple-prompt' }, 'req-prompt');
    assert.ok(prompt.response?.result, prompt.raw.body.slice(0, 300));
    const promptRow = await rowOf('req-prompt');
    assert.equal(promptRow.method, 'prompts/get');
    assert.equal(promptRow.decision, 'allow');
    // tools/list and resources/list are not decisions: no rows
    assert.equal(await auditCount(stack.dbUrl, "tenant = 'aud-misc' AND request_id = $1", ['"req-rlist"']), 0);

    // authentication failures: one row per key prefix per 10 s (with the count), never the key
    const initBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '0' } } });
    const mcpHeaders = { Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' };
    const authBefore = await auditCount(stack.dbUrl, "decision = 'auth_failed' AND replica = 'main'");
    for (let i = 0; i < 5; i++) {
        const r = await request(`${gateMain.url}/mcp`, { method: 'POST', headers: { ...mcpHeaders, Authorization: `Bearer ${SECRETS.badKey}` }, body: initBody });
        assert.equal(r.status, 401);
    }
    const rNo = await request(`${gateMain.url}/mcp`, { method: 'POST', headers: mcpHeaders, body: initBody });
    assert.equal(rNo.status, 401);
    const authRows = await waitFor(
        async () => {
            const x = await auditRows(stack.dbUrl, "decision = 'auth_failed' AND replica = 'main' AND (reason LIKE $1 OR reason LIKE 'missing%')", [`%${SECRETS.badKey.slice(0, 6)}%`]);
            return x.length >= 2 ? x : false;
        },
        { timeoutMs: 10000, message: 'auth_failed rows' },
    );
    console.log(`audit auth failures: ${JSON.stringify(authRows.map((x) => ({ tenant: x.tenant, method: x.method, reason: x.reason })))}`);
    assert.equal(authRows.length, 2, `5 bad keys with one prefix + 1 missing key within 10 s: 2 rows (${authBefore} before)`);
    const bad = authRows.find((x) => x.reason.includes(SECRETS.badKey.slice(0, 6)));
    assert.ok(bad, JSON.stringify(authRows));
    assert.equal(bad.tenant, null);
    assert.ok(!bad.reason.includes(SECRETS.badKey.slice(0, 7)), `only the key's prefix: ${bad.reason}`);
});

test('4b. sync mode: upstream failures after the durable decision are refusals that name their row', async () => {
    const s = await openSession(gateMain.url, keys.sb);
    const ids = idSource(1);
    await waitEcho(s, ids, 'bad__ok');
    await waitEcho(s, ids, 'slow__echo');
    const results = {};
    for (const [what, tool, args, id] of [
        ['upstream crash', 'bad__crash', { x: '1' }, 'sb-crash'],
        ['upstream timeout', 'slow__trigger-long-running-operation', { duration: 3, steps: 3 }, 'sb-timeout'],
    ]) {
        const r = await s.call(tool, args, id, { timeout: 10000 });
        const e = r.response?.error;
        assert.ok(e, `${what}: ${r.raw.body.slice(0, 300)}`);
        assert.equal(e.code, UPSTREAM, `${what}: ${JSON.stringify(e)}`);
        // the decision row is durable before forwarding; the failure's own row follows
        // asynchronously, so wait for the row the error names (or give up with what there is)
        let last = [];
        const rows = await waitFor(async () => {
            last = await auditRows(stack.dbUrl, "tenant = 'aud-sync-bad' AND request_id = $1", [JSON.stringify(id)]);
            return last.some((x) => x.id === e.data?.audit_id) ? last : false;
        }, { timeoutMs: 10000, message: `row of ${id}` }).catch(() => last);
        results[what] = { error: e, rows: rows.map((x) => ({ id: x.id, decision: x.decision, result_size: x.result_size })) };
    }
    console.log(`audit sync-mode upstream failures: ${JSON.stringify(results)}`);
    for (const [what, { error, rows }] of Object.entries(results)) {
        // DESIGN §3: every gateway-made refusal carries the audit id of its row in data
        assert.ok(error.data?.audit_id, `${what}: -31006 without data.audit_id in sync mode: ${JSON.stringify(error)}; rows ${JSON.stringify(rows)}`);
        assert.ok(rows.some((x) => x.id === error.data.audit_id), `${what}: data.audit_id names a row: ${JSON.stringify(rows)}`);
    }
});

/* A small RFC 4180 parser: rows of cells. */
function parseCsv(text) {
    const rows = [];
    let row = [];
    let cell = '';
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
        const ch = text[i];
        if (quoted) {
            if (ch === '"' && text[i + 1] === '"') {
                cell += '"';
                i++;
            } else if (ch === '"') quoted = false;
            else cell += ch;
        } else if (ch === '"') quoted = true;
        else if (ch === ',') {
            row.push(cell);
            cell = '';
        } else if (ch === '\r' && text[i + 1] === '\n') {
            row.push(cell);
            rows.push(row);
            row = [];
            cell = '';
            i++;
        } else cell += ch;
    }
    if (cell !== '' || row.length > 0) {
        row.push(cell);
        rows.push(row);
    }
    return rows;
}

test('5. GET /admin/api/v1/audit: filters, keyset pagination, csv, jsonl, bad parameters', async () => {
    const q1 = await openSession(gateMain.url, keys.q1);
    const q2 = await openSession(gateMain.url, keys.q2);
    const warm = idSource(900);
    await waitEcho(q1, warm);
    // [session, identity, tool, args, id, decision]
    const plan = [];
    for (let i = 0; i < 6; i++) plan.push([q1, 'q1', 'ev__echo', { message: `hello ${i}` }, 10 + i, 'allow']);
    for (let i = 0; i < 3; i++) plan.push([q1, 'q1', 'ev__echo', { message: `deny-me ${i}` }, 20 + i, 'deny']);
    for (let i = 0; i < 4; i++) plan.push([q2, 'q2', 'ev__get-sum', { a: i, b: 1 }, i === 0 ? -7 : 30 + i, 'allow']);
    for (let i = 0; i < 2; i++) plan.push([q2, 'q2', 'ev__echo', { message: `deny-me too ${i}` }, 40 + i, 'deny']);
    plan.push([q1, 'q1', '=1+1', {}, 50, 'error']);
    plan.push([q2, 'q2', '@SUM(A1)', {}, 51, 'error']);
    plan.push([q1, 'q1', '+cmd', {}, 52, 'error']);
    plan.push([q1, 'q1', '-rf', {}, 53, 'error']);
    plan.push([q2, 'q2', 'ev__echo', { message: '@SUM(A1)', note: '+cmd' }, '-x', 'allow']);
    for (const [sess, , tool, args, id] of plan) {
        await sess.call(tool, args, id);
        await sleep(2); // distinct timestamps, so that since/until cut where we expect
    }
    const total = plan.length + warm.used.length;
    await waitFor(async () => (await auditCount(stack.dbUrl, "tenant = 'aud-q'")) === total, { timeoutMs: 10000, message: 'aud-q rows' });

    const get = (qs, opts) => stack.admin.get(`/audit?${qs}`, opts);
    const all = await get('tenant=aud-q&limit=1000');
    assert.equal(all.status, 200, all.body);
    assert.match(String(all.headers['content-type']), /^application\/json/);
    const events = all.json.events;
    assert.equal(events.length, total);
    assert.equal(all.json.next_cursor, null);
    const key = (e) => `${e.ts}|${e.id}`;
    for (let i = 1; i < events.length; i++) assert.ok(key(events[i - 1]) < key(events[i]), 'ordered by (ts, id)');
    const cols = ['id', 'ts', 'tenant', 'identity', 'session', 'replica', 'seq', 'request_id', 'method', 'tool', 'upstream', 'class', 'decision', 'rule', 'reason', 'arguments', 'result_size', 'result_is_error', 'gate_latency_us', 'upstream_latency_us', 'findings', 'approval_id'];
    assert.deepEqual(Object.keys(events[0]), cols);
    const byReq = new Map(events.map((e) => [e.request_id, e]));
    for (const [, identity, tool, , id, decision] of plan) {
        const e = byReq.get(JSON.stringify(id));
        assert.ok(e, `row of ${JSON.stringify(id)}`);
        assert.deepEqual([e.identity, e.tool, e.decision], [identity, tool, decision], JSON.stringify(e));
    }
    assert.deepEqual(byReq.get('20').rule, 'formula-rule');
    assert.deepEqual(byReq.get('"-x"').arguments, { message: '@SUM(A1)', note: '+cmd' });

    const ids = (r) => r.json.events.map((e) => e.id);
    const expectIds = (pred) => events.filter(pred).map((e) => e.id);
    // each filter alone and together
    const cases = [
        ['tenant=aud-q&identity=q1', (e) => e.identity === 'q1'],
        ['tenant=aud-q&identity=q2', (e) => e.identity === 'q2'],
        ['tenant=aud-q&tool=ev__get-sum', (e) => e.tool === 'ev__get-sum'],
        ['tenant=aud-q&decision=deny', (e) => e.decision === 'deny'],
        ['tenant=aud-q&decision=error', (e) => e.decision === 'error'],
        ['tenant=aud-q&identity=q2&tool=ev__echo&decision=deny', (e) => e.identity === 'q2' && e.tool === 'ev__echo' && e.decision === 'deny'],
        ['identity=q1&tool=%3D1%2B1', (e) => e.tool === '=1+1'],
    ];
    const since = events[5].ts;
    const until = events[12].ts;
    cases.push([`tenant=aud-q&since=${encodeURIComponent(since)}`, (e) => e.ts >= since]);
    cases.push([`tenant=aud-q&until=${encodeURIComponent(until)}`, (e) => e.ts < until]);
    cases.push([`tenant=aud-q&since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`, (e) => e.ts >= since && e.ts < until]);
    cases.push([`tenant=aud-q&decision=allow&since=${encodeURIComponent(since)}`, (e) => e.decision === 'allow' && e.ts >= since]);
    for (const [qs, pred] of cases) {
        const r = await get(`${qs}&limit=1000`);
        assert.equal(r.status, 200, `${qs}: ${r.body}`);
        const want = expectIds(pred);
        assert.ok(want.length > 0 && want.length < events.length, `${qs} selects a proper subset`);
        assert.deepEqual(ids(r), want, qs);
    }
    assert.deepEqual(ids(await get('tenant=no-such-tenant')), []);
    assert.deepEqual(ids(await get('tenant=aud-q&identity=q1&decision=killed')), []);

    // keyset pagination: every row once, in order
    const paged = [];
    let cursor = null;
    let pages = 0;
    for (; pages < 100; pages++) {
        const r = await get(`tenant=aud-q&limit=4${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(r.status, 200, r.body);
        paged.push(...ids(r));
        cursor = r.json.next_cursor;
        if (!cursor) break;
    }
    assert.deepEqual(paged, events.map((e) => e.id), `pagination in ${pages + 1} pages`);
    // a page that happens to end exactly at the last row: its cursor (if any) leads to an empty page
    const exact = await get(`tenant=aud-q&limit=${total}`);
    assert.deepEqual(ids(exact), events.map((e) => e.id));
    if (exact.json.next_cursor) {
        const after = await get(`tenant=aud-q&limit=${total}&cursor=${exact.json.next_cursor}`);
        assert.deepEqual(after.json, { events: [], next_cursor: null });
    }

    // jsonl: one object per line, the cursor in X-Next-Cursor
    const lines = [];
    cursor = null;
    for (pages = 0; pages < 100; pages++) {
        const r = await get(`tenant=aud-q&format=jsonl&limit=5${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(r.status, 200, r.body);
        assert.match(String(r.headers['content-type']), /jsonl/);
        const ls = r.body.split('\n');
        assert.equal(ls.pop(), '', 'every line ends with \\n');
        for (const l of ls) {
            const o = JSON.parse(l);
            assert.equal(typeof o, 'object');
            assert.deepEqual(Object.keys(o), cols);
            lines.push(o.id);
        }
        cursor = r.headers['x-next-cursor'];
        if (!cursor) break;
    }
    assert.deepEqual(lines, events.map((e) => e.id), 'jsonl pages');

    // csv: header, one quoted row per event, formula cells neutralised
    const csv = await get('tenant=aud-q&format=csv&limit=1000');
    assert.equal(csv.status, 200, csv.body);
    assert.match(String(csv.headers['content-type']), /^text\/csv/);
    const rows = parseCsv(csv.body);
    assert.deepEqual(rows[0], cols, 'header');
    assert.equal(rows.length, total + 1);
    for (const r of rows.slice(1)) {
        assert.equal(r.length, cols.length);
        for (const cell of r) assert.ok(!/^[=+\-@\t\r]/.test(cell), `a formula cell: ${JSON.stringify(cell)} in ${JSON.stringify(r)}`);
    }
    const col = (name) => cols.indexOf(name);
    const csvByReq = new Map(rows.slice(1).map((r) => [r[col('request_id')], r]));
    assert.equal(csvByReq.get('20')[col('reason')], `'=HYPERLINK("http://evil.example/","click")`);
    assert.ok(csv.body.includes(`"'=HYPERLINK(""http://evil.example/"",""click"")"`), 'quotes doubled inside a quoted cell');
    assert.equal(csvByReq.get('50')[col('tool')], "'=1+1");
    assert.ok(csvByReq.get("'-7"), `request id -7 neutralised: ${[...csvByReq.keys()]}`);
    assert.equal(csvByReq.get('51')[col('tool')], "'@SUM(A1)");
    assert.equal(csvByReq.get('52')[col('tool')], "'+cmd");
    assert.equal(csvByReq.get('53')[col('tool')], "'-rf");
    assert.deepEqual(JSON.parse(csvByReq.get('"-x"')[col('arguments')]), { message: '@SUM(A1)', note: '+cmd' });
    assert.deepEqual(rows.slice(1).map((r) => r[0]), events.map((e) => e.id), 'csv rows in the same order');

    // bad parameters
    for (const qs of [
        'limit=0',
        'limit=10001',
        'limit=abc',
        'format=xml',
        'cursor=zz',
        'cursor=616263',
        'since=yesterday',
        'until=2026-13-45T99:00:00Z',
        'bogus=1',
        `tenant=${'a'.repeat(300)}`,
        'tenant',
    ]) {
        const r = await get(qs);
        assert.equal(r.status, 400, `${qs}: ${r.status} ${r.body.slice(0, 200)}`);
    }
    assert.equal((await get('tenant=aud-q', { auth: null })).status, 401);
    assert.equal((await get('tenant=aud-q', { auth: 'Bearer wrong' })).status, 403);
    assert.equal((await stack.admin.post('/audit', {})).status, 405);
});

test('6. secrets never appear: redacted in rows, absent from every row, spool file and log line', async () => {
    const s = await openSession(gateMain.url, keys.sec);
    const ids = idSource(1);
    await waitEcho(s, ids);
    const r1 = await s.call('ev__echo', { message: 'hello', api_token: SECRETS.top }, 'sec-1');
    assert.ok(r1.response?.result, r1.raw.body);
    const r2 = await s.call(
        'ev__echo',
        { message: 'nested', config: { auth: { client_secret: SECRETS.nested }, headers: [{ Authorization: `Bearer ${SECRETS.bearer}` }] } },
        'sec-2',
    );
    assert.ok(r2.response?.result, r2.raw.body);
    const r3 = await s.call('ev__echo', { message: 'deny-me', API_TOKEN: SECRETS.denied }, 'sec-3');
    assert.equal(r3.response?.error?.code, DENIED, r3.raw.body);

    const rows = await waitFor(
        async () => {
            const r = await auditRows(stack.dbUrl, "tenant = 'aud-secret' AND request_id LIKE '\"sec-%'");
            return r.length === 3 ? r : false;
        },
        { timeoutMs: 10000, message: 'secret rows' },
    );
    const by = Object.fromEntries(rows.map((r) => [JSON.parse(r.request_id), r]));
    assert.deepEqual(by['sec-1'].arguments, { message: 'hello', api_token: '[redacted]' });
    assert.equal(by['sec-2'].arguments.message, 'nested');
    assert.equal(by['sec-2'].arguments.config.auth.client_secret, '[redacted]');
    assert.equal(by['sec-2'].arguments.config.headers[0].Authorization, '[redacted]');
    assert.deepEqual(by['sec-3'].arguments, { message: 'deny-me', API_TOKEN: '[redacted]' });
    assert.equal(by['sec-3'].decision, 'deny');

    const dump = await withPg(stack.dbUrl, async (c) => {
        const a = (await c.query('SELECT to_jsonb(a)::text AS t FROM audit_events a')).rows.map((r) => r.t);
        const b = (await c.query('SELECT to_jsonb(a)::text AS t FROM admin_actions a')).rows.map((r) => r.t);
        return [...a, ...b].join('\n');
    });
    const exported = (await stack.admin.get('/audit?tenant=aud-secret&format=jsonl&limit=10000')).body;
    const places = {
        'audit_events and admin_actions': dump,
        'GET /audit export': exported,
        'replica log': gateMain.logs(),
        'control plane log': stack.control.logs(),
    };
    for (const f of fs.readdirSync(gateMain.spoolDir)) {
        const p = path.join(gateMain.spoolDir, f);
        if (fs.statSync(p).isFile()) places[`spool file ${f}`] = fs.readFileSync(p, 'utf8');
    }
    assert.ok(gateMain.logs().includes('aud-secret'), 'the replica log covers the tenant');
    for (const [where, text] of Object.entries(places)) {
        for (const [name, secret] of Object.entries(SECRETS)) {
            assert.ok(!text.includes(secret), `secret ${name} found in ${where}: ${text.slice(Math.max(0, text.indexOf(secret) - 200), text.indexOf(secret) + 100)}`);
        }
    }
});
