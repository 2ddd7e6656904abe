// SPDX-License-Identifier: Apache-2.0
//
// Foundation: the binary's settings, subcommands, migrations, health and readiness, body
// limit, headers and shutdown, against a real Redis and a real PostgreSQL on loopback.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';

import {
    MIGRATIONS_DIR,
    createDatabase,
    freePort,
    migrate,
    request,
    runBin,
    startGate,
    startPostgres,
    startRedis,
    waitFor,
    withPg,
} from './lib/harness.js';

const DRAIN_MS = 2000;
const MAX_BODY = 2048;

let redis; // shared Redis
let pg; // one PostgreSQL cluster for the whole file; its "sentinel" database gets migrated
let gate; // shared gate replica on the migrated database, see sharedGate()

const secret = (tag) => `${tag}${crypto.randomBytes(8).toString('hex')}`;

/** Lines of text without empty ones. */
const lines = (text) => text.split('\n').filter((l) => l.trim() !== '');

before(async () => {
    [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
});

/* Migrates the "sentinel" database and starts the shared gate on first use, so that a broken
 * migrate or gate fails the tests that need them, not the settings and --help tests. */
let sharedGatePromise = null;
function sharedGate() {
    sharedGatePromise ??= (async () => {
        await migrate(pg.url);
        gate = await startGate({
            redisUrl: redis.url,
            dbUrl: pg.url,
            env: { SG_MAX_BODY: MAX_BODY, SG_DRAIN_MS: DRAIN_MS },
        });
        return gate;
    })();
    return sharedGatePromise;
}

/* ---------------------------------------------------------------------------------------- */

test('migrate applies every migration, and a second run changes nothing', async () => {
    const url = await createDatabase(pg.url, 'migrate_twice');
    const files = fs.readdirSync(MIGRATIONS_DIR).filter((f) => /^\d{4}_.+\.sql$/.test(f));
    assert.ok(files.length >= 1, `no NNNN_*.sql file in ${MIGRATIONS_DIR}`);

    const snapshot = () =>
        withPg(url, async (c) => ({
            applied: (await c.query('SELECT * FROM schema_migrations ORDER BY 1')).rows,
            columns: (
                await c.query(
                    `SELECT table_schema, table_name, column_name, data_type
                       FROM information_schema.columns
                      WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
                      ORDER BY 1, 2, 3`,
                )
            ).rows,
        }));

    await migrate(url);
    const first = await snapshot();
    assert.equal(first.applied.length, files.length, 'one schema_migrations row per migration file');

    await migrate(url);
    const second = await snapshot();
    assert.deepEqual(second.applied, first.applied, 'second migrate changed schema_migrations');
    assert.deepEqual(second.columns, first.columns, 'second migrate changed the schema');
});

test('GET /healthz answers 200 with status ok', async () => {
    await sharedGate();
    const r = await request(`${gate.url}/healthz`);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().status, 'ok');
});

test('GET /readyz answers 200 when Redis and PostgreSQL are up and migrated', async () => {
    await sharedGate();
    const r = await waitFor(
        async () => {
            const res = await request(`${gate.url}/readyz`);
            return res.status === 200 && res;
        },
        { timeoutMs: 10000, message: '/readyz 200' },
    );
    const body = r.json();
    assert.equal(body.status, 'ready');
    assert.equal(typeof body.checks, 'object');
});

test('/readyz is 503 naming redis while Redis is stopped, and 200 again after it restarts', async () => {
    await sharedGate();
    const ownRedis = await startRedis();
    const g = await startGate({ redisUrl: ownRedis.url, dbUrl: pg.url });
    const readyz = () => request(`${g.url}/readyz`);

    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 10000, message: 'ready at start' });

    await ownRedis.stop();
    const down = await waitFor(
        async () => {
            const r = await readyz();
            return r.status === 503 && r;
        },
        { timeoutMs: 15000, message: '/readyz 503 while Redis is stopped' },
    );
    const body = down.json();
    assert.equal(body.status, 'not ready');
    assert.ok(Array.isArray(body.missing) && body.missing.includes('redis'), down.body);
    assert.ok(!body.missing.includes('postgres'), down.body);
    assert.ok(g.running(), 'gate exited while Redis was down');

    await ownRedis.restart(); // same port
    await waitFor(async () => (await readyz()).status === 200, {
        timeoutMs: 15000,
        message: '/readyz 200 after Redis restarted',
    });
    assert.equal((await request(`${g.url}/healthz`)).status, 200);
    const stopped = await g.stop();
    assert.equal(stopped.code, 0, `exit ${stopped.code ?? stopped.signal}\n${g.logs().slice(-4000)}`);
});

test('/readyz is 503 naming the schema when the database was not migrated', async () => {
    const bare = await createDatabase(pg.url, 'not_migrated');
    const g = await startGate({ redisUrl: redis.url, dbUrl: bare });
    // Redis and PostgreSQL are up: once their checks have run, the schema is all that is missing.
    let last = null;
    const r = await waitFor(
        async () => {
            last = await request(`${g.url}/readyz`);
            const missing = last.json().missing;
            return last.status === 503 && missing?.length === 1 && missing[0] === 'schema' && last;
        },
        { timeoutMs: 15000, message: '/readyz 503 missing only the schema' },
    ).catch((err) => {
        throw new Error(`${err.message}; last answer: ${last?.status} ${last?.body}`);
    });
    const body = r.json();
    assert.equal(body.status, 'not ready');
    const stopped = await g.stop();
    assert.equal(stopped.code, 0, `exit ${stopped.code ?? stopped.signal}\n${g.logs().slice(-4000)}`);
});

test('POST /mcp without credentials answers 401', async () => {
    await sharedGate();
    const r = await request(`${gate.url}/mcp`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
        body: { jsonrpc: '2.0', id: 1, method: 'ping' },
    });
    assert.equal(r.status, 401, r.body);
});

test('responses carry no Server header', async () => {
    await sharedGate();
    const mcpHeaders = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
    const responses = {
        'GET /healthz': await request(`${gate.url}/healthz`),
        'GET /readyz': await request(`${gate.url}/readyz`),
        'GET /no-such-path': await request(`${gate.url}/no-such-path`),
        'POST /mcp': await request(`${gate.url}/mcp`, {
            method: 'POST',
            headers: mcpHeaders,
            body: { jsonrpc: '2.0', id: 1, method: 'ping' },
        }),
    };
    for (const [what, r] of Object.entries(responses)) {
        assert.equal(r.headers.server, undefined, `${what} (status ${r.status}) has Server: ${r.headers.server}`);
    }
});

test('a body over SG_MAX_BODY gets 413 and the gate stays up', async () => {
    await sharedGate();
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(4096) } });
    assert.ok(big.length > 2 * MAX_BODY);
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };

    const sized = await request(`${gate.url}/mcp`, { method: 'POST', headers, body: big });
    assert.equal(sized.status, 413, `with Content-Length: ${sized.status} ${sized.body}`);
    assert.equal(sized.headers.server, undefined);

    const chunked = await request(`${gate.url}/mcp`, {
        method: 'POST',
        headers: { ...headers, 'Transfer-Encoding': 'chunked' },
        body: big,
    });
    assert.equal(chunked.status, 413, `chunked: ${chunked.status} ${chunked.body}`);

    assert.ok(gate.running(), 'gate exited');
    assert.equal((await request(`${gate.url}/healthz`)).status, 200);
});

/* ---------------------------------------------------------------------------------------- */

/** Valid settings for every command, to which one bad value is added. */
async function goodSettings() {
    return {
        SG_LISTEN: `127.0.0.1:${await freePort()}`,
        SG_REDIS_URL: redis.url,
        SG_DATABASE_URL: pg.url,
        SG_ADMIN_TOKEN: secret('admintoken'),
        SG_LOG_LEVEL: 'info',
    };
}

const badSettings = [
    { command: 'gate', variable: 'SG_LISTEN', env: { SG_LISTEN: 'nonsense' } },
    { command: 'gate', variable: 'SG_LOG_LEVEL', env: { SG_LOG_LEVEL: 'loud' } },
    { command: 'gate', variable: 'SG_REDIS_URL', env: { SG_REDIS_URL: 'nonsense' } },
    { command: 'gate', variable: 'SG_MAX_BODY', env: { SG_MAX_BODY: 'lots' } },
    { command: 'control', variable: 'SG_ADMIN_TOKEN', env: { SG_ADMIN_TOKEN: undefined } },
    { command: 'start', variable: 'SG_ADMIN_TOKEN', env: { SG_ADMIN_TOKEN: undefined } },
    { command: 'control', variable: 'SG_ADMIN_TOKEN', env: { SG_ADMIN_TOKEN: 'short' } },
];

for (const { command, variable, env } of badSettings) {
    const shown = Object.entries(env)
        .map(([k, v]) => (v === undefined ? `without ${k}` : `${k}=${v}`))
        .join(' ');
    test(`${command} ${shown}: exit 2 and one stderr line naming ${variable}`, async () => {
        const r = await runBin([command], { env: { ...(await goodSettings()), ...env }, timeoutMs: 10000 });
        assert.ok(!r.timedOut, `${command} kept running with ${shown}`);
        assert.equal(r.code, 2, `exit ${r.code ?? r.signal}; stderr:\n${r.stderr}`);
        const errLines = lines(r.stderr);
        assert.equal(errLines.length, 1, `expected one stderr line, got:\n${r.stderr}`);
        assert.match(errLines[0], new RegExp(variable));
    });
}

test('--check prints the settings with passwords and the admin token masked', async () => {
    const redisPw = secret('redispw');
    const pgPw = secret('pgpw');
    const token = secret('admintoken');
    const listen = `127.0.0.1:${await freePort()}`;
    const env = {
        SG_LISTEN: listen,
        SG_REDIS_URL: `redis://:${redisPw}@127.0.0.1:6399/0`, // --check must not connect
        SG_DATABASE_URL: `postgresql://sg:${pgPw}@127.0.0.1:5999/sentinel`,
        SG_ADMIN_TOKEN: token,
        SG_LOG_LEVEL: 'info',
    };
    for (const command of ['gate', 'control', 'start']) {
        const r = await runBin([command, '--check'], { env, timeoutMs: 10000 });
        const all = r.stdout + r.stderr;
        assert.equal(r.code, 0, `${command} --check exit ${r.code ?? r.signal}:\n${all}`);
        for (const s of [redisPw, pgPw, token]) {
            assert.ok(!all.includes(s), `${command} --check printed a secret:\n${all}`);
        }
        const out = lines(r.stdout);
        const setting = (name) => out.find((l) => l.startsWith(`${name}=`));
        assert.equal(setting('SG_LISTEN'), `SG_LISTEN=${listen}`, r.stdout);
        assert.match(setting('SG_REDIS_URL') ?? '', /^SG_REDIS_URL=.*\*\*\*\*.*127\.0\.0\.1:6399/, r.stdout);
        assert.match(setting('SG_DATABASE_URL') ?? '', /^SG_DATABASE_URL=.*\*\*\*\*.*127\.0\.0\.1:5999/, r.stdout);
        if (command !== 'gate') assert.match(setting('SG_ADMIN_TOKEN') ?? '', /^SG_ADMIN_TOKEN=\*\*\*\*/, r.stdout);
        for (const l of out) assert.match(l, /^[A-Z][A-Z0-9_]*=/, `not a NAME=value line: ${l}`);
    }
});

test('--help of each subcommand exits 0', async () => {
    for (const command of ['gate', 'control', 'start', 'migrate']) {
        const r = await runBin([command, '--help'], { timeoutMs: 10000 });
        assert.equal(r.code, 0, `${command} --help exit ${r.code ?? r.signal}:\n${r.stderr}`);
        assert.ok(r.stdout.trim().length > 0, `${command} --help printed nothing on stdout`);
    }
    const g = await runBin(['gate', '--help'], { timeoutMs: 10000 });
    assert.match(g.stdout, /SG_LISTEN/, 'gate --help lists its settings');
});

test('an unknown subcommand fails', async () => {
    const r = await runBin(['no-such-command'], { timeoutMs: 10000 });
    assert.ok(!r.timedOut);
    assert.notEqual(r.code, 0);
});

test('SIGTERM drains and exits 0 within SG_DRAIN_MS', async () => {
    // The shared gate has served every request above: leaks would show at this exit.
    await sharedGate();
    assert.ok(gate.running(), 'shared gate is not running');
    const r = await gate.stop({ timeoutMs: DRAIN_MS + 5000 });
    assert.ok(!r.timedOut, `no exit within ${DRAIN_MS + 5000} ms`);
    assert.equal(r.code, 0, `exit ${r.code ?? r.signal}\n${gate.logs().slice(-4000)}`);
    assert.ok(r.ms <= DRAIN_MS + 3000, `exit took ${r.ms} ms`);
});
