// SPDX-License-Identifier: Apache-2.0
//
// The MCP relay (/mcp, docs/RELAY.md) end to end: the official SDK client and raw Streamable
// HTTP against two gate replicas sharing one Redis and one PostgreSQL, relaying to real
// upstreams: server-everything and server-filesystem over stdio, server-everything over
// Streamable HTTP. Some stdio upstreams run behind a tap (lib/mcp.js: tapped) that records
// what the gate writes to them, to check what the upstream saw (mapped progress tokens,
// notifications/cancelled).
//
// Tenants (all loaded before the replicas start):
//   acme    ev (everything, tapped) + fs (filesystem); identities agent-1 and agent-2
//   reload  ev + fs, reconfigured by the reload test
//   slow    ev (tapped) with timeout_ms 500
//   web     hev: everything over Streamable HTTP

import { test, before, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CreateMessageRequestSchema, ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

import { migrate, request, sleep, startGate, startPostgres, startRedis, tempDir, waitFor } from './lib/harness.js';
import {
    EVERYTHING_BIN,
    FILESYSTEM_BIN,
    PROTOCOL_VERSION,
    connectClient,
    logTail,
    newKey,
    openStream,
    processAlive,
    processExists,
    rawPeer,
    readTap,
    redisClient,
    rpc,
    spawnedPids,
    startEverythingHttp,
    tapped,
    waitReady,
    writeTenant,
} from './lib/mcp.js';

const MAX_BODY = 131072;
const LONG = 'trigger-long-running-operation';
const UPSTREAM_ERROR = -31006;

const KEY1 = newKey('agent1');
const KEY2 = newKey('agent2');
const KEY_RELOAD = newKey('reload');
const KEY_SLOW = newKey('slow');
const KEY_WEB = newKey('web');

let redis; // redis client
let gateA;
let gateB;
let workspace; // server-filesystem's root
let tapDir;
let evHttp;

const tap = (name) => path.join(tapDir, name);
const fsUpstream = () => ({ name: 'fs', prefix: 'fs', command: FILESYSTEM_BIN, args: [workspace], timeout_ms: 60000 });
const evUpstream = () => ({ name: 'ev', prefix: 'ev', command: EVERYTHING_BIN, args: ['stdio'], timeout_ms: 60000 });
const reloadConfig = (version, upstreams) => ({
    tenant: 'reload',
    version,
    identities: [{ name: 'reloader', keys: [KEY_RELOAD] }],
    upstreams,
});

before(async () => {
    const [redisSrv, pg] = await Promise.all([startRedis(), startPostgres()]);
    await migrate(pg.url);
    redis = await redisClient(redisSrv.url);
    evHttp = await startEverythingHttp();

    workspace = fs.realpathSync(tempDir('ws-'));
    fs.writeFileSync(path.join(workspace, 'hello.txt'), 'hello from the workspace\nsecond line\n');
    tapDir = tempDir('tap-');

    await writeTenant(redis, {
        tenant: 'acme',
        version: 1,
        identities: [
            { name: 'agent-1', keys: [KEY1] },
            { name: 'agent-2', keys: [KEY2] },
        ],
        upstreams: [
            { name: 'ev', prefix: 'ev', ...tapped(tap('acme-ev'), EVERYTHING_BIN, ['stdio']), timeout_ms: 60000 },
            fsUpstream(),
        ],
    });
    await writeTenant(redis, reloadConfig(1, [evUpstream(), fsUpstream()]));
    await writeTenant(redis, {
        tenant: 'slow',
        version: 1,
        identities: [{ name: 'slowpoke', keys: [KEY_SLOW] }],
        upstreams: [{ name: 'ev', prefix: 'ev', ...tapped(tap('slow-ev'), EVERYTHING_BIN, ['stdio']), timeout_ms: 500 }],
    });
    await writeTenant(redis, {
        tenant: 'web',
        version: 1,
        identities: [{ name: 'webber', keys: [KEY_WEB] }],
        upstreams: [{ name: 'hev', prefix: 'hev', url: evHttp.url, timeout_ms: 60000 }],
    });

    const env = { SG_MAX_BODY: MAX_BODY };
    [gateA, gateB] = await Promise.all([
        startGate({ redisUrl: redisSrv.url, dbUrl: pg.url, env }),
        startGate({ redisUrl: redisSrv.url, dbUrl: pg.url, env }),
    ]);
    await Promise.all([waitReady(gateA, { timeoutMs: 60000 }), waitReady(gateB, { timeoutMs: 60000 })]);
});

let stopping = false; // set by the last test, which stops the replicas itself

// A replica that died during a test fails that test, with the end of its log.
afterEach(() => {
    if (stopping) return;
    for (const [name, g] of [['A', gateA], ['B', gateB]]) {
        if (g && !g.running()) {
            const { exitCode, signalCode } = g.proc;
            assert.fail(`replica ${name} died (${signalCode ?? exitCode}):\n${logTail(g)}`);
        }
    }
});

/* ---------------------------------------------------------------------------------------- */

/** An SDK client straight to a stdio server (no gate), to compare what the gate relays. */
async function directClient(command, args) {
    const transport = new StdioClientTransport({ command, args, stderr: 'ignore' });
    // the gate declares these two capabilities upstream; server-everything registers tools by them
    const client = new Client({ name: 'direct', version: '0' }, { capabilities: { sampling: {}, elicitation: {} } });
    await client.connect(transport);
    return client;
}

/** tools/list of a direct client once it stops changing (server-everything adds tools after initialize). */
async function stableTools(client) {
    let prev = null;
    return waitFor(
        async () => {
            const { tools } = await client.listTools();
            const key = JSON.stringify(tools.map((t) => t.name).sort());
            const stable = prev === key;
            prev = key;
            if (!stable) await sleep(300);
            return stable ? tools : false;
        },
        { timeoutMs: 10000, intervalMs: 0, message: 'stable direct tools/list' },
    );
}

const byName = (list) => new Map(list.map((x) => [x.name, x]));
const withoutName = ({ name, ...rest }) => rest; // eslint-disable-line no-unused-vars

/** The code of a JSON-RPC error the SDK raised (McpError.code). */
async function rejectsWithCode(promise, code, what) {
    let err = null;
    try {
        await promise;
    } catch (e) {
        err = e;
    }
    assert.ok(err, `${what}: expected an error`);
    assert.equal(err.code, code, `${what}: error code (${err.message})`);
    return err;
}

/** Progress notifications the SDK client could not match to a request of its own. */
const strayProgress = (c) => c.errors.map((e) => e.message).filter((m) => /progress notification/.test(m));

const text = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('');

/* ---------------------------------------------------------------------------------------- */

test('tools of both upstreams are listed namespaced with their metadata, and calls reach them', async () => {
    const c = await connectClient(gateA, KEY1);
    const { tools } = await c.client.listTools();
    const gateTools = byName(tools);

    for (const [prefix, command, args] of [
        ['ev', EVERYTHING_BIN, ['stdio']],
        ['fs', FILESYSTEM_BIN, [workspace]],
    ]) {
        const direct = await directClient(command, args);
        try {
            const all = await stableTools(direct);
            // tools that only run as tasks are hidden (the gate declares no tasks capability)
            const want = all.filter((t) => t.execution?.taskSupport !== 'required');
            for (const t of all.filter((x) => !want.includes(x))) {
                assert.ok(!gateTools.has(`${prefix}__${t.name}`), `${prefix}__${t.name} needs tasks: hidden`);
                await rejectsWithCode(c.client.callTool({ name: `${prefix}__${t.name}`, arguments: {} }), -32602, `call to hidden ${t.name}`);
            }
            const exposed = tools.filter((t) => t.name.startsWith(`${prefix}__`)).map((t) => t.name).sort();
            assert.deepEqual(exposed, want.map((t) => `${prefix}__${t.name}`).sort(), `${prefix} tool names`);
            for (const t of want) {
                const g = gateTools.get(`${prefix}__${t.name}`);
                assert.deepEqual(withoutName(g), withoutName(t), `${prefix}__${t.name}: metadata kept`);
            }
        } finally {
            await direct.close();
        }
    }
    // spot checks, in case both sides changed alike
    const echo = gateTools.get('ev__echo');
    assert.equal(echo.description, 'Echoes back the input string');
    assert.equal(echo.annotations.readOnlyHint, true);
    assert.deepEqual(Object.keys(echo.inputSchema.properties), ['message']);
    assert.ok(gateTools.has('fs__read_text_file'), 'fs__read_text_file listed');
    assert.equal(tools.length, gateTools.size, 'no duplicate names');
    assert.ok(tools.every((t) => /^(ev|fs)__/.test(t.name)), 'every name is prefixed');

    const read = await c.client.callTool({ name: 'fs__read_text_file', arguments: { path: path.join(workspace, 'hello.txt') } });
    assert.equal(read.isError ?? false, false, JSON.stringify(read));
    assert.equal(text(read), 'hello from the workspace\nsecond line\n');

    const echoed = await c.client.callTool({ name: 'ev__echo', arguments: { message: 'ping through the gate' } });
    assert.equal(text(echoed), 'Echo: ping through the gate');

    // a tool execution error comes back as a result with isError, untouched
    const missing = await c.client.callTool({ name: 'fs__read_text_file', arguments: { path: path.join(workspace, 'nope.txt') } });
    assert.equal(missing.isError, true, JSON.stringify(missing));

    await rejectsWithCode(c.client.callTool({ name: 'ev__no_such_tool', arguments: {} }), -32602, 'unknown tool');
    await rejectsWithCode(c.client.callTool({ name: 'echo', arguments: { message: 'x' } }), -32602, 'unprefixed name');
});

test('resources and prompts of server-everything work through the gate', async () => {
    const c = await connectClient(gateA, KEY1);
    const direct = await directClient(EVERYTHING_BIN, ['stdio']);
    try {
        const { resources } = await c.client.listResources();
        const want = (await direct.listResources()).resources;
        assert.ok(want.length > 0, 'server-everything lists resources');
        for (const r of want) {
            assert.deepEqual(resources.find((x) => x.uri === r.uri), r, `resource ${r.uri} listed as is`);
        }

        const uri = want.find((r) => r.uri.endsWith('/features.md'))?.uri ?? want[0].uri;
        const read = await c.client.readResource({ uri });
        assert.deepEqual(read, await direct.readResource({ uri }), `resources/read ${uri}`);
        assert.ok(read.contents[0].text.length > 0);

        const { resourceTemplates } = await c.client.listResourceTemplates();
        const wantTemplates = (await direct.listResourceTemplates()).resourceTemplates;
        assert.deepEqual(
            resourceTemplates.map((t) => t.uriTemplate).sort(),
            wantTemplates.map((t) => t.uriTemplate).sort(),
            'resource templates',
        );
        const dyn = await c.client.readResource({ uri: 'demo://resource/dynamic/text/3' });
        assert.equal(dyn.contents.length, 1);
        assert.equal(dyn.contents[0].uri, 'demo://resource/dynamic/text/3');
        assert.match(dyn.contents[0].text, /^Resource 3: This is a plaintext resource created at /, 'templated resource');

        const { prompts } = await c.client.listPrompts();
        const wantPrompts = (await direct.listPrompts()).prompts;
        assert.deepEqual(prompts.map((p) => p.name).sort(), wantPrompts.map((p) => `ev__${p.name}`).sort(), 'prompt names prefixed');
        const args = prompts.find((p) => p.name === 'ev__args-prompt');
        assert.deepEqual(withoutName(args), withoutName(wantPrompts.find((p) => p.name === 'args-prompt')), 'prompt metadata kept');

        const got = await c.client.getPrompt({ name: 'ev__args-prompt', arguments: { city: 'Oslo', state: 'Viken' } });
        assert.equal(got.messages[0].role, 'user');
        assert.equal(got.messages[0].content.text, "What's weather in Oslo, Viken?");
        const simple = await c.client.getPrompt({ name: 'ev__simple-prompt' });
        assert.deepEqual(simple, await direct.getPrompt({ name: 'simple-prompt' }));

        // a missing required argument is the upstream's error, relayed
        await assert.rejects(c.client.getPrompt({ name: 'ev__args-prompt', arguments: {} }), /./);
    } finally {
        await direct.close();
    }
});

test('progress notifications reach the caller with its own token', async () => {
    const c = await connectClient(gateA, KEY1);
    const progress = [];
    const result = await c.client.callTool(
        { name: `ev__${LONG}`, arguments: { duration: 1.2, steps: 4 } },
        undefined,
        { onprogress: (p) => progress.push(p), timeout: 20000 },
    );
    assert.equal(text(result), 'Long running operation completed. Duration: 1.2 seconds, Steps: 4.');
    assert.deepEqual(
        progress.map((p) => [p.progress, p.total]),
        [[1, 4], [2, 4], [3, 4], [4, 4]],
    );
    assert.deepEqual(strayProgress(c), [], 'the SDK saw no progress for an unknown token');

    // on the wire: the agent's token came back, the upstream saw the gate's "sg<id>"
    const notes = c.received.filter((m) => m.method === 'notifications/progress');
    assert.equal(notes.length, 4);
    const response = c.received.find((m) => m.result && text(m.result).startsWith('Long running operation completed. Duration: 1.2'));
    assert.ok(response, 'response recorded');
    assert.ok(notes.every((m) => m.params.progressToken === response.id), `tokens ${JSON.stringify(notes.map((m) => m.params.progressToken))} == request id ${response.id}`);

    const sent = readTap(tap('acme-ev'), gateA).filter(
        (m) => m.method === 'tools/call' && m.params?.name === LONG && m.params.arguments?.duration === 1.2,
    );
    assert.equal(sent.length, 1, 'the call reached the upstream once');
    assert.equal(sent[0].params._meta.progressToken, `sg${sent[0].id}`, 'the upstream got the gate token');

    // raw, with a string token
    const peer = rawPeer(gateA, KEY1);
    await peer.initialize();
    const req = rpc('tools/call', { name: `ev__${LONG}`, arguments: { duration: 0.6, steps: 3 }, _meta: { progressToken: 'my-token-é' } });
    const r = await peer.post(req);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    const raw = r.messages.filter((m) => m.method === 'notifications/progress');
    assert.deepEqual(raw.map((m) => [m.params.progressToken, m.params.progress]), [['my-token-é', 1], ['my-token-é', 2], ['my-token-é', 3]]);
    assert.equal(r.messages.at(-1).id, req.id, 'the response comes last');
    assert.match(text(r.response.result), /Steps: 3\./);

    // without text/event-stream in Accept: only the final JSON
    const j = await peer.post(rpc('tools/call', { name: `ev__${LONG}`, arguments: { duration: 0.3, steps: 2 }, _meta: { progressToken: 5 } }), {
        headers: { Accept: 'application/json' },
    });
    assert.equal(j.status, 200);
    assert.match(j.headers['content-type'], /^application\/json/);
    assert.equal(j.messages.length, 1);
    assert.match(text(j.response.result), /Steps: 2\./);
});

test('cancellation: the agent aborts, the gate ends the call and cancels it upstream', async () => {
    const c = await connectClient(gateA, KEY1);
    const ac = new AbortController();
    let progressed = 0;
    const call = c.client.callTool({ name: `ev__${LONG}`, arguments: { duration: 31, steps: 31 } }, undefined, {
        signal: ac.signal,
        onprogress: () => progressed++,
        timeout: 60000,
    });
    call.catch(() => {});
    await waitFor(() => progressed >= 1, { timeoutMs: 5000, message: 'first progress of the call to cancel' });
    const t0 = Date.now();
    ac.abort('changed my mind');
    await assert.rejects(call, /changed my mind/);
    assert.ok(Date.now() - t0 < 1000, 'the SDK call ended at once');

    // the gate forwarded notifications/cancelled for the upstream's id of that call
    const upstreamCall = readTap(tap('acme-ev'), gateA).find((m) => m.method === 'tools/call' && m.params?.arguments?.duration === 31);
    assert.ok(upstreamCall, 'the call reached the upstream');
    const cancel = await waitFor(
        () =>
            readTap(tap('acme-ev'), gateA).find(
                (m) => m.method === 'notifications/cancelled' && m.params?.requestId === upstreamCall.id,
            ),
        { timeoutMs: 3000, message: `notifications/cancelled for upstream id ${upstreamCall.id}` },
    );
    assert.equal(cancel.id, undefined, 'a notification');

    // the same over raw HTTP: the POST's stream is ended with an error for the cancelled id
    const peer = rawPeer(gateA, KEY1);
    await peer.initialize();
    const req = rpc('tools/call', { name: `ev__${LONG}`, arguments: { duration: 32, steps: 32 }, _meta: { progressToken: 'c1' } });
    const stream = await openStream(`${gateA.url}/mcp`, { method: 'POST', headers: peer.headers(), body: req });
    assert.equal(stream.status, 200);
    await stream.waitFor((m) => m.method === 'notifications/progress', 5000, 'progress before cancelling');
    const n = await peer.post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: req.id, reason: 'test' } });
    assert.equal(n.status, 202);
    const ended = await stream.waitFor((m) => m.id === req.id, 3000, 'the cancelled call answered');
    assert.ok(ended.error, `error response, got ${JSON.stringify(ended)}`);
    await waitFor(() => stream.ended, { timeoutMs: 3000, message: 'the cancelled POST stream ends' });
    const second = readTap(tap('acme-ev'), gateA).find((m) => m.method === 'tools/call' && m.params?.arguments?.duration === 32);
    await waitFor(
        () => readTap(tap('acme-ev'), gateA).some((m) => m.method === 'notifications/cancelled' && m.params?.requestId === second.id),
        { timeoutMs: 3000, message: 'raw cancel forwarded upstream' },
    );
    stream.close();

    // another session cannot cancel this session's call: ids are per session
    const victim = rpc('tools/call', { name: `ev__${LONG}`, arguments: { duration: 0.8, steps: 2 } });
    const running = peer.post(victim);
    const other = rawPeer(gateA, KEY1);
    await other.initialize();
    await sleep(200);
    assert.equal((await other.post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: victim.id } })).status, 202);
    const v = await running;
    assert.ok(v.response.result, `another session's cancel left the call alone: ${JSON.stringify(v.response)}`);

    // the upstream and the gate still work
    const echoed = await c.client.callTool({ name: 'ev__echo', arguments: { message: 'after cancel' } });
    assert.equal(text(echoed), 'Echo: after cancel');
});

test('two agents calling concurrently each get only their own progress', async () => {
    const [c1, c2] = await Promise.all([connectClient(gateA, KEY1, { name: 'one' }), connectClient(gateA, KEY2, { name: 'two' })]);
    const p1 = [];
    const p2 = [];
    const [r1, r2] = await Promise.all([
        c1.client.callTool({ name: `ev__${LONG}`, arguments: { duration: 1.5, steps: 3 } }, undefined, { onprogress: (p) => p1.push(p), timeout: 20000 }),
        c2.client.callTool({ name: `ev__${LONG}`, arguments: { duration: 1.5, steps: 5 } }, undefined, { onprogress: (p) => p2.push(p), timeout: 20000 }),
    ]);
    assert.match(text(r1), /Steps: 3\./);
    assert.match(text(r2), /Steps: 5\./);
    assert.deepEqual(p1.map((p) => [p.progress, p.total]), [[1, 3], [2, 3], [3, 3]]);
    assert.deepEqual(p2.map((p) => [p.progress, p.total]), [[1, 5], [2, 5], [3, 5], [4, 5], [5, 5]]);
    for (const c of [c1, c2]) {
        assert.deepEqual(strayProgress(c), [], 'no stray progress');
        const resp = c.received.find((m) => m.result && /Long running operation/.test(text(m.result)));
        const tokens = c.received.filter((m) => m.method === 'notifications/progress').map((m) => m.params.progressToken);
        assert.ok(tokens.every((t) => t === resp.id), `tokens ${tokens} == ${resp.id}`);
    }

    // raw: same request id and same token in two sessions of the same upstream
    const a = rawPeer(gateA, KEY1);
    const b = rawPeer(gateA, KEY2);
    await Promise.all([a.initialize(), b.initialize()]);
    const call = (steps) => ({
        jsonrpc: '2.0',
        id: 77,
        method: 'tools/call',
        params: { name: `ev__${LONG}`, arguments: { duration: 1.2, steps }, _meta: { progressToken: 'same' } },
    });
    const [ra, rb] = await Promise.all([a.post(call(2)), b.post(call(4))]);
    const prog = (r) => r.messages.filter((m) => m.method === 'notifications/progress').map((m) => [m.params.progressToken, m.params.progress, m.params.total]);
    assert.deepEqual(prog(ra), [['same', 1, 2], ['same', 2, 2]]);
    assert.deepEqual(prog(rb), [['same', 1, 4], ['same', 2, 4], ['same', 3, 4], ['same', 4, 4]]);
    assert.match(text(ra.response.result), /Steps: 2\./);
    assert.match(text(rb.response.result), /Steps: 4\./);
    assert.equal(ra.response.id, 77);
    assert.equal(rb.response.id, 77);
});

test('a session initialized on one replica works on another', async () => {
    const c = await connectClient(gateA, KEY1);
    const sid = c.sessionId;
    assert.match(sid, /^s1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const onB = rawPeer(gateB, KEY1, { session: sid, protocolVersion: c.transport.protocolVersion ?? PROTOCOL_VERSION });

    const list = await onB.post(rpc('tools/list'));
    assert.equal(list.status, 200, list.body);
    const names = list.response.result.tools.map((t) => t.name);
    assert.ok(names.includes('ev__echo') && names.includes('fs__read_text_file'), names.join(','));

    const call = await onB.post(rpc('tools/call', { name: 'ev__echo', arguments: { message: 'on replica B' } }));
    assert.equal(call.status, 200, call.body);
    assert.equal(text(call.response.result), 'Echo: on replica B');

    const read = await onB.post(rpc('tools/call', { name: 'fs__read_text_file', arguments: { path: path.join(workspace, 'hello.txt') } }));
    assert.equal(text(read.response.result), 'hello from the workspace\nsecond line\n');

    const prog = await onB.post(rpc('tools/call', { name: `ev__${LONG}`, arguments: { duration: 0.4, steps: 2 }, _meta: { progressToken: 'b' } }));
    assert.equal(prog.messages.filter((m) => m.method === 'notifications/progress' && m.params.progressToken === 'b').length, 2);

    // and the SDK session on A is still fine
    assert.equal(text(await c.client.callTool({ name: 'ev__echo', arguments: { message: 'A' } })), 'Echo: A');
});

test('session lifecycle, authentication and request checks', async () => {
    const peer = rawPeer(gateA, KEY1);
    await peer.initialize();
    const sid = peer.session;
    const onB = rawPeer(gateB, KEY1, { session: sid });
    assert.equal((await peer.post(rpc('ping'))).status, 200);
    assert.equal((await onB.post(rpc('ping'))).status, 200);

    // another identity's key (same tenant, and another tenant) with this session: 404
    for (const key of [KEY2, KEY_RELOAD]) {
        const r = await rawPeer(gateA, key, { session: sid }).post(rpc('tools/list'));
        assert.equal(r.status, 404, `session of agent-1 with another key: ${r.status} ${r.body}`);
        assert.equal(r.json().error.code, -32001);
    }

    // forged or altered session ids: 404
    const [v, payload, sig] = sid.split('.');
    const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const forged = [
        `${v}.${payload}.${flip(sig, 3)}`,
        `${v}.${flip(payload, 5)}.${sig}`,
        `${v}.${payload}.${sig.slice(0, -1)}`,
        `${v}.${payload}.${sig}A`,
        `s2.${payload}.${sig}`,
        'not-a-session',
        `${sid}x`,
    ];
    // the same bytes spelled another way (a non-zero padding bit): tokens have one spelling
    const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const respell = (s) => s.slice(0, -1) + b64[b64.indexOf(s.at(-1)) ^ 1];
    assert.equal(sig.length % 4, 3, '32-byte MAC: 43 characters, 2 padding bits');
    forged.push(`${v}.${payload}.${respell(sig)}`);
    if (payload.length % 4 !== 0) forged.push(`${v}.${respell(payload)}.${sig}`);
    for (const f of forged) {
        const r = await rawPeer(gateA, KEY1, { session: f }).post(rpc('tools/list'));
        assert.equal(r.status, 404, `forged ${f}: ${r.status} ${r.body}`);
    }

    // tokens signed with the real secret (read from Redis): fresh works, expired or future do not
    const secret = await redis.get('sg:secret:session');
    assert.ok(secret, 'sg:secret:session exists');
    const claims = Buffer.from(payload, 'base64url').toString('utf8').split('\x1f');
    assert.equal(claims.length, 5, `payload fields: ${JSON.stringify(claims)}`);
    assert.deepEqual(claims.slice(0, 3), ['acme', 'agent-1', PROTOCOL_VERSION]);
    const sign = (issuedMs) => {
        const pl = Buffer.from(
            ['acme', 'agent-1', PROTOCOL_VERSION, String(issuedMs), crypto.randomBytes(16).toString('hex')].join('\x1f'),
        );
        const mac = crypto.createHmac('sha256', Buffer.from(secret)).update(pl).digest();
        return `s1.${pl.toString('base64url')}.${mac.toString('base64url')}`;
    };
    const DAY = 24 * 3600 * 1000;
    const fresh = await rawPeer(gateA, KEY1, { session: sign(Date.now() - 1000) }).post(rpc('ping'));
    assert.equal(fresh.status, 200, `a token made like the gate's is accepted (else the expiry checks below prove nothing): ${fresh.body}`);
    for (const [what, issued] of [
        ['expired', Date.now() - DAY - 60000],
        ['issued in the future', Date.now() + 10 * 60000],
    ]) {
        const r = await rawPeer(gateA, KEY1, { session: sign(issued) }).post(rpc('ping'));
        assert.equal(r.status, 404, `${what} session: ${r.status} ${r.body}`);
    }

    // no session id on a non-initialize request: 400
    const noSession = await rawPeer(gateA, KEY1).post(rpc('tools/list'));
    assert.equal(noSession.status, 400, noSession.body);

    // unsupported MCP-Protocol-Version: 400
    const badVersion = await peer.post(rpc('tools/list'), { headers: { 'MCP-Protocol-Version': '1999-01-01' } });
    assert.equal(badVersion.status, 400, badVersion.body);

    // a browser Origin the tenant does not allow: 403
    const origin = await peer.post(rpc('tools/list'), { headers: { Origin: 'http://evil.example' } });
    assert.equal(origin.status, 403, origin.body);

    // an Accept that allows neither JSON nor SSE: 406
    const accept = await peer.post(rpc('tools/list'), { headers: { Accept: 'text/html' } });
    assert.equal(accept.status, 406, accept.body);

    // initialize answers the requested revision when the gate speaks it, else 2025-11-25
    for (const [asked, answered] of [
        ['2025-03-26', '2025-03-26'],
        ['2025-06-18', '2025-06-18'],
        ['2025-11-25', '2025-11-25'],
        ['2024-11-05', '2025-11-25'],
    ]) {
        const r = await rawPeer(gateB, KEY1).post({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: { protocolVersion: asked, capabilities: {}, clientInfo: { name: 'v', version: '0' } },
        });
        assert.equal(r.status, 200);
        assert.equal(r.response.result.protocolVersion, answered, `initialize asking ${asked}`);
    }

    // other HTTP methods: 405 with Allow
    const put = await peer.post(rpc('tools/list'), { method: 'PUT' });
    assert.equal(put.status, 405);
    assert.match(put.headers.allow ?? '', /POST/);

    // missing or unknown API key: 401 with resource_metadata
    for (const key of [null, newKey('unknown')]) {
        const r = await rawPeer(gateA, key, { session: sid }).post(rpc('tools/list'));
        assert.equal(r.status, 401, `key ${key}: ${r.status}`);
        const www = r.headers['www-authenticate'] ?? '';
        assert.match(www, /^Bearer /);
        const m = /resource_metadata="([^"]+)"/.exec(www);
        assert.ok(m, `WWW-Authenticate: ${www}`);
        assert.equal(m[1], `${gateA.url}/.well-known/oauth-protected-resource`);
    }
    const prm = await request(`${gateA.url}/.well-known/oauth-protected-resource`);
    assert.equal(prm.status, 200);
    assert.match(prm.headers['content-type'], /^application\/json/);
    assert.equal(prm.json().resource, `${gateA.url}/mcp`);

    // DELETE ends the session on every replica
    const del = await peer.post('', { method: 'DELETE', headers: { 'Content-Type': undefined } });
    assert.ok(del.status >= 200 && del.status < 300, `DELETE: ${del.status} ${del.body}`);
    for (const p of [peer, onB]) {
        await waitFor(async () => (await p.post(rpc('tools/list'))).status === 404, {
            timeoutMs: 5000,
            message: `ended session refused by ${p.gate.url}`,
        });
        assert.equal((await p.post(rpc('ping'))).status, 404);
        const get = await p.post(undefined, { method: 'GET', headers: { Accept: 'text/event-stream', 'Content-Type': undefined } });
        assert.equal(get.status, 404, 'GET with an ended session');
    }
    // a new session of the same agent is unaffected
    const again = rawPeer(gateB, KEY1);
    await again.initialize();
    assert.notEqual(again.session, sid);
    assert.equal((await again.post(rpc('ping'))).status, 200);
});

test('an upstream killed mid-call fails the call with -31006 and is restarted', async () => {
    const c = await connectClient(gateA, KEY1);
    const before = spawnedPids(gateA, 'acme', 'ev');
    assert.ok(before.length >= 1, 'the gate logged the pid of acme/ev');
    const pid = before.at(-1);
    assert.ok(processAlive(pid), `upstream pid ${pid} alive`);

    let progressed = 0;
    const call = c.client.callTool({ name: `ev__${LONG}`, arguments: { duration: 30, steps: 30 } }, undefined, {
        onprogress: () => progressed++,
        timeout: 60000,
    });
    call.catch(() => {});
    await waitFor(() => progressed >= 1, { timeoutMs: 5000, message: 'the call is running upstream' });
    const t0 = Date.now();
    process.kill(-pid, 'SIGKILL'); // its process group: the tap and the server
    const err = await rejectsWithCode(call, UPSTREAM_ERROR, 'call on a killed upstream');
    assert.ok(Date.now() - t0 < 3000, `failed promptly (${Date.now() - t0} ms)`);
    assert.ok(err.data === undefined || err.data.upstream === 'ev', JSON.stringify(err.data));

    await waitFor(() => spawnedPids(gateA, 'acme', 'ev').length > before.length, {
        timeoutMs: 10000,
        message: `acme/ev respawned (replica A running: ${gateA.running()})`,
    }).catch((e) => assert.fail(`${e.message}\n${logTail(gateA)}`));
    await waitReady(gateA, { timeoutMs: 15000 });
    const echoed = await waitFor(
        async () => {
            try {
                return await c.client.callTool({ name: 'ev__echo', arguments: { message: 'after restart' } });
            } catch (e) {
                if (e.code !== UPSTREAM_ERROR) throw Object.assign(e, { fatal: true });
                return false;
            }
        },
        { timeoutMs: 15000, intervalMs: 200, message: 'a call after the restart' },
    );
    assert.equal(text(echoed), 'Echo: after restart');
    assert.ok(!processExists(pid), `killed upstream ${pid} reaped`);
    const { tools } = await c.client.listTools();
    assert.ok(tools.some((t) => t.name === `ev__${LONG}`), 'tools listed again after the restart');
});

test('a config reload removes an upstream, its tools and its process, and announces list_changed', async () => {
    const peer = rawPeer(gateA, KEY_RELOAD);
    await peer.initialize();
    const names = async (p) => (await p.post(rpc('tools/list'))).response.result.tools.map((t) => t.name);
    assert.ok((await names(peer)).some((n) => n.startsWith('fs__')), 'fs tools before');

    const fsPids = [gateA, gateB].map((g) => spawnedPids(g, 'reload', 'fs').at(-1));
    const evPids = [gateA, gateB].map((g) => spawnedPids(g, 'reload', 'ev'));
    for (const pid of fsPids) assert.ok(pid && processAlive(pid), `fs pid ${pid} alive`);

    const stream = await openStream(`${gateA.url}/mcp`, { headers: { ...peer.headers(), Accept: 'text/event-stream' } });
    assert.equal(stream.status, 200);
    assert.match(stream.headers['content-type'], /^text\/event-stream/);
    await sleep(200);

    await writeTenant(redis, reloadConfig(2, [evUpstream()]));

    const onB = rawPeer(gateB, KEY_RELOAD, { session: peer.session });
    for (const p of [peer, onB]) {
        const now = await waitFor(async () => {
            const n = await names(p);
            return n.some((x) => x.startsWith('fs__')) ? false : n;
        }, { timeoutMs: 10000, message: `fs__ tools gone on ${p.gate.url}` });
        assert.ok(now.includes('ev__echo'), 'ev tools stay');
    }
    await stream.waitFor((m) => m.method === 'notifications/tools/list_changed', 5000, 'notifications/tools/list_changed on GET /mcp');
    for (const pid of fsPids) {
        await waitFor(() => !processExists(pid), { timeoutMs: 10000, message: `fs upstream pid ${pid} gone (alive=${processAlive(pid)})` });
    }
    // the unchanged ev upstream was not restarted
    assert.deepEqual([gateA, gateB].map((g) => spawnedPids(g, 'reload', 'ev')), evPids, 'ev not respawned');
    const call = await peer.post(rpc('tools/call', { name: 'fs__read_text_file', arguments: { path: path.join(workspace, 'hello.txt') } }));
    assert.equal(call.response?.error?.code, -32602, `call to a removed tool: ${call.body}`);
    stream.close();
});

test('an upstream over Streamable HTTP: list, call, progress', async () => {
    const c = await connectClient(gateA, KEY_WEB);
    const { tools } = await c.client.listTools();
    const names = tools.map((t) => t.name);
    assert.ok(names.includes('hev__echo') && names.includes(`hev__${LONG}`), names.join(','));
    assert.equal(tools.find((t) => t.name === 'hev__echo').description, 'Echoes back the input string');

    assert.equal(text(await c.client.callTool({ name: 'hev__echo', arguments: { message: 'over http' } })), 'Echo: over http');

    const progress = [];
    const r = await c.client.callTool({ name: `hev__${LONG}`, arguments: { duration: 1, steps: 3 } }, undefined, {
        onprogress: (p) => progress.push(p),
        timeout: 20000,
    });
    assert.match(text(r), /Steps: 3\./);
    assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3]);
    assert.deepEqual(strayProgress(c), []);

    const res = await c.client.readResource({ uri: 'demo://resource/dynamic/text/1' });
    assert.equal(res.contents[0].uri, 'demo://resource/dynamic/text/1');

    // the other replica has its own upstream session to the same server
    const onB = rawPeer(gateB, KEY_WEB, { session: c.sessionId });
    const b = await onB.post(rpc('tools/call', { name: 'hev__echo', arguments: { message: 'B over http' } }));
    assert.equal(text(b.response.result), 'Echo: B over http');
});

test('hostile input on /mcp is refused and the gate stays up', async () => {
    const peer = rawPeer(gateA, KEY1);
    await peer.initialize();

    const malformed = await peer.post('{"jsonrpc":"2.0","id":1,"method":');
    assert.equal(malformed.status, 400, malformed.body);
    assert.equal(malformed.json().error.code, -32700);

    const batch = await peer.post(JSON.stringify([rpc('ping'), rpc('tools/list')]));
    assert.equal(batch.status, 400, batch.body);
    assert.equal(batch.json().error.code, -32600);
    assert.ok(!Array.isArray(batch.json()));

    const depth = 10000;
    const deep = await peer.post(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`);
    assert.equal(deep.status, 400, deep.body.slice(0, 200));
    assert.ok([-32600, -32700].includes(deep.json().error.code), deep.body);
    const deepObj = await peer.post(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
    assert.equal(deepObj.status, 400);

    const unknown = await peer.post(rpc('no/such/method'));
    assert.equal(unknown.response?.error?.code, -32601, `unknown method: ${unknown.status} ${unknown.body}`);

    const notJson = await peer.post(rpc('ping'), { headers: { 'Content-Type': 'text/plain' } });
    assert.equal(notJson.status, 415, notJson.body);
    const form = await peer.post('a=b', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.equal(form.status, 415);

    const big = rpc('tools/call', { name: 'ev__echo', arguments: { message: 'x'.repeat(MAX_BODY + 10) } });
    const tooBig = await peer.post(big);
    assert.equal(tooBig.status, 413, tooBig.body.slice(0, 200));
    // just under the limit is fine
    const fits = rpc('tools/call', { name: 'ev__echo', arguments: { message: 'y'.repeat(MAX_BODY - 200) } });
    const ok = await peer.post(fits);
    assert.equal(ok.status, 200, ok.body.slice(0, 200));
    assert.equal(text(ok.response.result).length, 'Echo: '.length + MAX_BODY - 200);

    for (const body of ['', 'null', '42', '"str"', '{}', '{"jsonrpc":"1.0","id":1,"method":"ping"}', '{"jsonrpc":"2.0","id":1,"method":"ping","method":"x"}', '\u0000', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}']) {
        const r = await peer.post(body);
        assert.ok(r.status >= 200 && r.status < 500, `body ${JSON.stringify(body)}: ${r.status}`);
        if (r.status === 200) assert.ok(r.response?.error, `body ${JSON.stringify(body)} answered ${r.body}`);
    }

    for (const g of [gateA, gateB]) {
        assert.equal((await request(`${g.url}/healthz`)).status, 200);
        assert.ok(g.running(), 'replica still running');
    }
    assert.equal(text((await peer.post(rpc('tools/call', { name: 'ev__echo', arguments: { message: 'still here' } }))).response.result), 'Echo: still here');
});

test('a call over the upstream timeout fails with -31006 and is cancelled upstream', async () => {
    const peer = rawPeer(gateA, KEY_SLOW);
    await peer.initialize();
    const req = rpc('tools/call', { name: `ev__${LONG}`, arguments: { duration: 10, steps: 2 } });
    const t0 = Date.now();
    const r = await peer.post(req);
    const ms = Date.now() - t0;
    assert.equal(r.status, 200, r.body);
    assert.equal(r.response.error?.code, UPSTREAM_ERROR, r.body);
    assert.equal(r.response.error.data?.reason, 'etimedout', r.body);
    assert.ok(ms >= 450 && ms < 1500, `timed out after ${ms} ms (timeout_ms 500)`);

    const sent = readTap(tap('slow-ev'), gateA).find((m) => m.method === 'tools/call' && m.params?.arguments?.duration === 10);
    assert.ok(sent, 'the call reached the upstream');
    await waitFor(
        () => readTap(tap('slow-ev'), gateA).some((m) => m.method === 'notifications/cancelled' && m.params?.requestId === sent.id),
        { timeoutMs: 2000, message: 'notifications/cancelled sent upstream on the timeout' },
    );

    // the SDK sees the same code, and short calls still work on that upstream
    const c = await connectClient(gateA, KEY_SLOW);
    await rejectsWithCode(c.client.callTool({ name: `ev__${LONG}`, arguments: { duration: 5, steps: 5 } }), UPSTREAM_ERROR, 'SDK call over the timeout');
    assert.equal(text(await c.client.callTool({ name: 'ev__echo', arguments: { message: 'quick' } })), 'Echo: quick');
});

test('server-to-client requests (sampling, elicitation) reach the calling agent and its answers return', async () => {
    const c = await connectClient(gateA, KEY1, { capabilities: { sampling: {}, elicitation: {} } });
    const asked = [];
    c.client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
        asked.push(req);
        return { role: 'assistant', content: { type: 'text', text: 'sampled by the agent' }, model: 'it-model', stopReason: 'endTurn' };
    });
    c.client.setRequestHandler(ElicitRequestSchema, async (req) => {
        asked.push(req);
        return { action: 'accept', content: { color: 'teal' } };
    });
    const sampled = await c.client.callTool({ name: 'ev__trigger-sampling-request', arguments: { prompt: 'say hi', maxTokens: 10 } }, undefined, { timeout: 15000 });
    assert.match(text(sampled), /sampled by the agent/);
    assert.match(text(sampled), /it-model/);
    const elicited = await c.client.callTool({ name: 'ev__trigger-elicitation-request', arguments: {} }, undefined, { timeout: 15000 });
    assert.match(text(elicited), /teal/);
    assert.deepEqual(asked.map((r) => r.method), ['sampling/createMessage', 'elicitation/create']);
    const relayed = c.received.filter((m) => m.method === 'sampling/createMessage' || m.method === 'elicitation/create');
    assert.ok(relayed.every((m) => /^sg-\d+$/.test(String(m.id))), `relayed ids ${relayed.map((m) => m.id)}`);
});

test('initialize on an existing session is refused', async () => {
    // MCP-NOTES §3.7 (the SDK: 400, -32600); mcp.c has a "session already initialized" answer
    const peer = rawPeer(gateA, KEY1);
    await peer.initialize();
    const r = await peer.post(rpc('initialize', { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'again', version: '0' } }));
    assert.equal(r.status, 400, `second initialize with Mcp-Session-Id: ${r.status}, new session ${r.headers['mcp-session-id'] ?? '(none)'}`);
    assert.equal(r.json().error.code, -32600);
});

test('SIGTERM with agents connected: GET streams end, both replicas exit cleanly', async () => {
    // last: it stops the replicas
    stopping = true;
    const c = await connectClient(gateA, KEY1); // the SDK keeps its connections alive
    await c.client.listTools();
    const streams = [];
    for (const g of [gateA, gateB]) {
        const peer = rawPeer(g, KEY1);
        await peer.initialize();
        const s = await openStream(`${g.url}/mcp`, { headers: { ...peer.headers(), Accept: 'text/event-stream' } });
        assert.equal(s.status, 200);
        streams.push(s);
    }
    const results = await Promise.all([gateA, gateB].map((g) => g.stop({ timeoutMs: 15000 })));
    await sleep(300); // the last stderr lines may arrive after the exit event
    for (const [i, g] of [gateA, gateB].entries()) {
        const r = results[i];
        const tail = logTail(g, 3000);
        assert.ok(streams[i].ended, `GET /mcp stream of replica ${i} ended`);
        assert.ok(!r.timedOut, `replica ${i} exited within 15 s`);
        assert.equal(r.signal, null, `replica ${i} died by ${r.signal}:\n${tail}`);
        assert.doesNotMatch(g.logs(), /Assertion .* failed|runtime error:|AddressSanitizer|LeakSanitizer/, `replica ${i}:\n${tail}`);
        assert.equal(r.code, 0, `replica ${i} exit code:\n${tail}`);
    }
});
