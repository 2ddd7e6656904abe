// SPDX-License-Identifier: Apache-2.0
//
// The policy engine end to end (issue 5 "Done when", DESIGN §3 §4, docs/POLICY.md,
// docs/ADMIN-API.md "Policy"): tenants bootstrapped through `sentinel-gate control`, one gate
// replica, real upstreams (server-everything and server-filesystem over stdio on a temporary
// workspace), and the official MCP SDK client as the agent.
//
//   1. a strict tenant's agent sees only the tools it may call (tools/list per identity); a
//      hidden tool answers like an unknown one
//   2. a denied call gets -31001 with the rule name and reason (and its audit id); a destructive
//      call a rule allows still needs approval in strict (-31002, fails closed)
//   3. `<workspace>/../etc/passwd` does not match an allow on `^<workspace>/` (path-typed test)
//   4. a paste-site URL hidden in any argument — plain, percent-encoded, base64, userinfo trick,
//      upper case, trailing dot, full-width, nested, in a key — is denied by an args_domain rule;
//      look-alikes that are not the paste site pass
//   5. a standard tenant's destructive calls are denied (hidden when no rule could allow them,
//      -31001 `default` when an argument-dependent allow does not match) while reads pass
//   6. POST /tenants/{t}/policy/evaluate: decision, rule, reason, class and a trace of every rule
//   7. a shadow rule changes no decision; evaluate reports it, the replica logs it and the
//      call's audit row carries it in findings
//
// Run: node --test --test-concurrency=1 integration-tests/policy.test.js

import { test, before, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { tempDir, waitFor } from './lib/harness.js';
import { connectClient, logTail } from './lib/mcp.js';
import { textOf } from './lib/control.js';
import { auditRows, everything, filesystem, keyFor, startReplica, startStack } from './lib/audit.js';

const DENIED = -31001;
const APPROVAL = -31002;

let stack;
let gate;
let ws; // strict tenant's workspace (realpath)
let ws2; // standard tenant's workspace
const keys = {};
const clients = {};

const reEscape = (s) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/** A workspace directory (realpath'd: server-filesystem compares real paths) with hello.txt. */
function workspace(prefix) {
    const dir = fs.realpathSync(tempDir(prefix));
    fs.writeFileSync(path.join(dir, 'hello.txt'), `hello from ${prefix}\n`);
    fs.mkdirSync(path.join(dir, 'public'));
    return dir;
}

const PASTE_RULE = {
    name: 'no-paste-sites',
    priority: 200,
    action: 'deny',
    reason: 'exfiltration risk',
    match: { args_domain: ['pastebin.com'] },
};

function strictPayload() {
    return {
        tenant: 'pol-strict',
        profile: 'strict',
        upstreams: [everything('ev'), filesystem('fs', ws)],
        identities: [
            { name: 'agent', roles: ['agent'] },
            { name: 'other', roles: ['other'] },
        ],
        policies: [
            PASTE_RULE,
            {
                name: 'no-secrets-in-echo',
                priority: 150,
                action: 'deny',
                reason: 'looks like a secret',
                match: { tool: 'ev__echo', args: { message: { regex: '(?i)secret' } } },
            },
            { name: 'echo-for-agents', priority: 100, action: 'allow', match: { tool: 'ev__echo', roles: ['agent'] } },
            {
                name: 'read-workspace',
                priority: 100,
                action: 'allow',
                match: { tool: 'fs__read_text_file', roles: ['agent'], args: { path: { regex: `^${reEscape(ws)}/`, type: 'path' } } },
            },
            { name: 'agents-may-write', priority: 100, action: 'allow', match: { tool: 'fs__write_file', roles: ['agent'] } },
            { name: 'sum-for-other', priority: 100, action: 'allow', match: { tool: 'ev__get-sum', identities: ['other'] } },
        ],
    };
}

function pastePayload() {
    return {
        tenant: 'pol-paste',
        profile: 'permissive',
        upstreams: [everything('ev')],
        identities: [{ name: 'p', roles: ['agent'] }],
        policies: [
            PASTE_RULE,
            {
                name: 'try-block-shadow',
                priority: 300,
                action: 'deny',
                mode: 'shadow',
                reason: 'trying this out',
                match: { tool: 'ev__echo', args: { message: { regex: 'shadow-me' } } },
            },
        ],
    };
}

function standardPayload() {
    return {
        tenant: 'pol-std',
        profile: 'standard',
        upstreams: [filesystem('fs', ws2)],
        identities: [{ name: 's', roles: ['agent'] }],
        classes: { fs__create_directory: 'destructive' },
        policies: [
            {
                name: 'public-writes',
                priority: 100,
                action: 'allow',
                match: { tool: 'fs__write_file', args: { path: { prefix: `${ws2}/public`, type: 'path' } } },
            },
        ],
    };
}

/** Tool names the client sees, sorted. */
async function toolNames(c) {
    const r = await c.client.listTools();
    return r.tools.map((t) => t.name).sort();
}

/** Waits until c's tools/list holds every name of want (the upstreams start after the bootstrap). */
async function waitTools(c, want) {
    return waitFor(
        async () => {
            const names = await toolNames(c);
            return want.every((n) => names.includes(n)) ? names : false;
        },
        { timeoutMs: 30000, intervalMs: 200, message: `tools ${want.join(', ')} listed` },
    );
}

/** callTool that resolves {result} or {error: {code, message, data}}. */
async function call(c, name, args) {
    try {
        return { result: await c.client.callTool({ name, arguments: args }, undefined, { timeout: 15000 }) };
    } catch (err) {
        if (typeof err.code !== 'number') throw err;
        return { error: { code: err.code, message: err.message, data: err.data } };
    }
}

function assertDenied(r, rule, what) {
    assert.ok(r.error, `${what}: expected a refusal, got ${JSON.stringify(r.result)?.slice(0, 300)}`);
    assert.equal(r.error.code, DENIED, `${what}: ${JSON.stringify(r.error)}`);
    assert.equal(r.error.data?.rule, rule, `${what}: ${JSON.stringify(r.error)}`);
    assert.match(String(r.error.data?.audit_id), /^[0-9a-f-]{36}$/, `${what}: audit_id in data`);
}

before(async () => {
    stack = await startStack();
    ws = workspace('ws-strict-');
    ws2 = workspace('ws-std-');
    const strict = await stack.admin.bootstrap(strictPayload());
    const paste = await stack.admin.bootstrap(pastePayload());
    const std = await stack.admin.bootstrap(standardPayload());
    keys.agent = keyFor(strict, 'agent');
    keys.other = keyFor(strict, 'other');
    keys.p = keyFor(paste, 'p');
    keys.s = keyFor(std, 's');
    gate = await startReplica(stack, { env: { SG_REPLICA_ID: 'pol-gate' } });
    clients.agent = await connectClient(gate, keys.agent);
    clients.other = await connectClient(gate, keys.other);
    clients.p = await connectClient(gate, keys.p);
    clients.s = await connectClient(gate, keys.s);
    await waitTools(clients.agent, ['ev__echo', 'fs__read_text_file']);
    await waitTools(clients.p, ['ev__echo']);
    await waitTools(clients.s, ['fs__read_text_file']);
});

afterEach(() => {
    for (const [name, p] of [['control', stack?.control], ['gate', gate]]) {
        if (p && !p.running()) assert.fail(`${name} died (${p.proc.signalCode ?? p.proc.exitCode}):\n${logTail(p)}`);
    }
});

/* ---------------------------------------------------------------------------------------- */

test('strict: each identity sees only the tools it may call; a hidden tool answers like an unknown one', async () => {
    const agentTools = await toolNames(clients.agent);
    assert.deepEqual(agentTools, ['ev__echo', 'fs__read_text_file', 'fs__write_file'], 'agent: rules allow exactly these');
    const otherTools = await toolNames(clients.other);
    assert.deepEqual(otherTools, ['ev__get-sum'], 'other: only its own rule');

    // the permissive tenant on the same upstream sees everything, so the lists above are policy
    const all = await toolNames(clients.p);
    assert.ok(all.length > 5 && all.includes('ev__get-sum') && all.includes('ev__get-env'), `permissive list: ${all}`);

    const hidden = await call(clients.agent, 'ev__get-sum', { a: 1, b: 2 });
    const unknown = await call(clients.agent, 'ev__no-such-tool', { a: 1, b: 2 });
    assert.ok(hidden.error && unknown.error, `hidden ${JSON.stringify(hidden)} unknown ${JSON.stringify(unknown)}`);
    assert.equal(hidden.error.code, unknown.error.code);
    assert.equal(hidden.error.message.replace('ev__get-sum', 'X'), unknown.error.message.replace('ev__no-such-tool', 'X'));
    assert.deepEqual(Object.keys(hidden.error.data ?? {}).sort(), Object.keys(unknown.error.data ?? {}).sort());

    const ok = await call(clients.other, 'ev__get-sum', { a: 2, b: 3 });
    assert.ok(ok.result && !ok.result.isError && textOf(ok.result).includes('5'), JSON.stringify(ok));
    const ok2 = await call(clients.agent, 'ev__echo', { message: 'hi' });
    assert.equal(textOf(ok2.result), 'Echo: hi');
});

test('strict: a denied call gets -31001 with the rule name and reason; a destructive allow needs approval', async () => {
    const r = await call(clients.agent, 'ev__echo', { message: 'my SECRET is 42' });
    assertDenied(r, 'no-secrets-in-echo', 'echo with a secret');
    assert.equal(r.error.data.reason, 'looks like a secret');
    assert.match(r.error.message, /looks like a secret/);

    // no rule at all for this identity and an argument-dependent tool: the profile default
    const r2 = await call(clients.agent, 'fs__read_text_file', { path: '/etc/hostname' });
    assertDenied(r2, 'default', 'read outside the workspace');

    // strict: a destructive call (write_file is destructiveHint) allowed by a rule is held for
    // approval, and with no approval flow yet it fails closed
    const target = path.join(ws, 'written.txt');
    const r3 = await call(clients.agent, 'fs__write_file', { path: target, content: 'x' });
    assert.ok(r3.error, JSON.stringify(r3));
    assert.equal(r3.error.code, APPROVAL, JSON.stringify(r3.error));
    assert.match(r3.error.message, /approval required/);
    assert.equal(r3.error.data?.rule, 'agents-may-write');
    assert.equal(fs.existsSync(target), false, 'the write never reached the upstream');
});

test('path arguments are normalised: <workspace>/../etc/passwd does not match an allow on ^<workspace>/', async () => {
    const inside = await call(clients.agent, 'fs__read_text_file', { path: `${ws}/hello.txt` });
    assert.ok(inside.result && !inside.result.isError, JSON.stringify(inside));
    assert.match(textOf(inside.result), /hello from ws-strict-/);

    const dotted = await call(clients.agent, 'fs__read_text_file', { path: `${ws}/./public/../hello.txt` });
    assert.ok(dotted.result && !dotted.result.isError, `a .. that stays inside is still allowed: ${JSON.stringify(dotted)}`);

    const ups = '/..'.repeat(ws.split('/').length);
    for (const p of [`${ws}/../etc/passwd`, `${ws}${ups}/etc/passwd`, `${ws}/public/../../etc/passwd`, `${ws}//..//..//etc/passwd`, `${ws}/..`]) {
        const r = await call(clients.agent, 'fs__read_text_file', { path: p });
        assertDenied(r, 'default', p);
        assert.ok(!JSON.stringify(r).includes('root:'), `${p}: no file content in the answer`);
    }
});

test('args_domain: a paste-site URL hidden in any argument is denied, look-alikes pass', async () => {
    const b64 = (s) => Buffer.from(s).toString('base64');
    const hidden = {
        plain: { message: 'see https://pastebin.com/raw/abc' },
        'bare host in prose': { message: 'upload it to pastebin.com please' },
        'percent-encoded': { message: 'https%3A%2F%2Fpastebin%2Ecom%2Fraw%2Fabc' },
        'double percent-encoded': { message: 'https%253A%252F%252Fpastebin%252Ecom%252Fx' },
        'percent-encoded host': { message: 'https://%70%61%73%74%65%62%69%6e.com/x' },
        base64: { message: b64('https://pastebin.com/raw/abc') },
        'base64 glued to text': { message: `data=x${b64('exfil to https://pastebin.com/u/me')}` },
        'url-safe base64': { message: b64('https://pastebin.com/raw/a?b=c~~~').replace(/\+/g, '-').replace(/\//g, '_') },
        userinfo: { message: 'https://ok.example@pastebin.com/' },
        'userinfo with password': { message: 'https://ok.example:pw@pastebin.com:443/x' },
        'upper case': { message: 'HTTPS://PASTEBIN.COM/X' },
        'trailing dot': { message: 'https://pastebin.com./x' },
        subdomain: { message: 'https://www.pastebin.com/x' },
        'full-width': { message: 'ｐａｓｔｅｂｉｎ．ｃｏｍ' },
        'ideographic dot': { message: 'https://pastebin。com/x' },
        'backslash escapes': { message: 'https:\\/\\/pastebin\\.com\\/x' },
        'html entities': { message: 'https&colon;&sol;&sol;pastebin&period;com/x' },
        'nested argument': { message: 'hi', meta: { notes: ['x', { deep: 'https://pastebin.com/y' }] } },
        'object key': { message: 'hi', meta: { 'https://pastebin.com/k': 1 } },
        'base64 in nested': { message: 'hi', attachments: [{ blob: b64('http://PASTEBIN.com./z') }] },
        'base64 of base64': { message: b64(b64('https://pastebin.com/')) },
        'base64 of percent-encoding': { message: b64(encodeURIComponent('https://pastebin.com/x')) },
        'scheme-relative': { message: '//pastebin.com/x' },
        'percent-encoded @ in userinfo': { message: 'https://ok.example%40pastebin.com/' },
        'zero-width space': { message: 'https://paste\u200bbin.com/' },
        'mailto': { message: 'mailto:drop@pastebin.com' },
    };
    const failures = [];
    for (const [what, args] of Object.entries(hidden)) {
        const r = await call(clients.p, 'ev__echo', args);
        if (!(r.error && r.error.code === DENIED && r.error.data?.rule === 'no-paste-sites' && r.error.data?.reason === 'exfiltration risk')) {
            failures.push(`${what} (${JSON.stringify(args)}): ${JSON.stringify(r).slice(0, 200)}`);
        }
    }
    assert.deepEqual(failures, [], 'every hidden paste-site URL is denied by no-paste-sites');

    const lookalikes = {
        'another registrable domain': 'https://pastebin.com.example.org/x',
        'suffix without dot': 'https://notpastebin.com/x',
        'only in the path': 'https://example.com/pastebin/com',
        'plain words': 'pastebin com',
    };
    for (const [what, message] of Object.entries(lookalikes)) {
        const r = await call(clients.p, 'ev__echo', { message });
        assert.ok(r.result && !r.result.isError, `${what} (${message}) must pass: ${JSON.stringify(r)}`);
        assert.equal(textOf(r.result), `Echo: ${message}`);
    }
});

test('standard: destructive calls are denied while reads and writes pass', async () => {
    const names = await toolNames(clients.s);
    for (const t of ['fs__read_text_file', 'fs__list_directory', 'fs__write_file']) assert.ok(names.includes(t), `${t} listed: ${names}`);
    // destructive with no rule that could allow them: hidden; create_directory is a write by its
    // annotations, destructive by the tenant's classes (the tenant wins)
    for (const t of ['fs__move_file', 'fs__edit_file', 'fs__create_directory']) assert.ok(!names.includes(t), `${t} hidden: ${names}`);

    const read = await call(clients.s, 'fs__read_text_file', { path: `${ws2}/hello.txt` });
    assert.ok(read.result && !read.result.isError, JSON.stringify(read));
    assert.match(textOf(read.result), /hello from ws-std-/);
    const list = await call(clients.s, 'fs__list_directory', { path: ws2 });
    assert.ok(list.result && !list.result.isError && textOf(list.result).includes('hello.txt'), JSON.stringify(list));

    // write_file is destructive (annotations); an allow that depends on its path keeps it visible,
    // and where that rule does not match, the standard profile denies it
    const outside = path.join(ws2, 'other.txt');
    assertDenied(await call(clients.s, 'fs__write_file', { path: outside, content: 'x' }), 'default', 'destructive write');
    assertDenied(await call(clients.s, 'fs__write_file', { path: `${ws2}/public/../other.txt`, content: 'x' }), 'default', 'write via ..');
    assert.equal(fs.existsSync(outside), false);

    const pub = path.join(ws2, 'public', 'a.txt');
    const w = await call(clients.s, 'fs__write_file', { path: pub, content: 'public' });
    assert.ok(w.result && !w.result.isError, `allowed destructive write (standard: no approval): ${JSON.stringify(w)}`);
    assert.equal(fs.readFileSync(pub, 'utf8'), 'public');

    // hidden destructive tools are refused like unknown tools and never reach the upstream
    const mv = await call(clients.s, 'fs__move_file', { source: `${ws2}/hello.txt`, destination: `${ws2}/moved.txt` });
    assert.ok(mv.error && mv.error.code !== DENIED, JSON.stringify(mv));
    assert.match(mv.error.message, /Unknown tool/);
    assert.ok(fs.existsSync(path.join(ws2, 'hello.txt')) && !fs.existsSync(path.join(ws2, 'moved.txt')));
    const mk = await call(clients.s, 'fs__create_directory', { path: `${ws2}/newdir` });
    assert.ok(mk.error, JSON.stringify(mk));
    assert.equal(fs.existsSync(path.join(ws2, 'newdir')), false);
});

test('POST /tenants/{t}/policy/evaluate: decision, rule, reason, class and a trace of every rule', async () => {
    const ev = (t, body) => stack.admin.post(`/tenants/${t}/policy/evaluate`, body);

    const allow = await ev('pol-strict', { identity: 'agent', tool: 'fs__read_text_file', arguments: { path: `${ws}/hello.txt` } });
    assert.equal(allow.status, 200, allow.body);
    assert.equal(allow.json.decision, 'allow');
    assert.equal(allow.json.rule, 'read-workspace');
    assert.equal(allow.json.class, 'read');
    assert.equal(allow.json.escalated, false);

    const deny = await ev('pol-strict', { identity: 'agent', tool: 'fs__read_text_file', arguments: { path: `${ws}/../etc/passwd` } });
    assert.equal(deny.status, 200, deny.body);
    assert.equal(deny.json.decision, 'deny');
    assert.equal(deny.json.rule, 'default');
    assert.equal(typeof deny.json.reason, 'string');
    const trace = deny.json.trace;
    assert.ok(Array.isArray(trace), deny.body);
    // every rule of the tenant, in the documented total order (priority, deny < approve < allow, name)
    assert.deepEqual(
        trace.map((t) => t.rule),
        ['no-paste-sites', 'no-secrets-in-echo', 'agents-may-write', 'echo-for-agents', 'read-workspace', 'sum-for-other'],
        deny.body,
    );
    for (const t of trace) {
        assert.equal(t.matched, false, JSON.stringify(t));
        assert.equal(typeof t.why, 'string');
        assert.ok(t.why.length > 0, JSON.stringify(t));
    }
    const rw = trace.find((t) => t.rule === 'read-workspace');
    assert.match(rw.why, /args\.path/, `read-workspace says the path test failed: ${JSON.stringify(rw)}`);
    assert.ok(!deny.body.includes('/etc/passwd'), 'a trace never echoes argument values');

    const paste = await ev('pol-paste', { identity: 'p', tool: 'ev__echo', arguments: { message: Buffer.from('https://ok.example@pastebin.com/').toString('base64') } });
    assert.equal(paste.status, 200, paste.body);
    assert.equal(paste.json.decision, 'deny');
    assert.equal(paste.json.rule, 'no-paste-sites');
    assert.equal(paste.json.reason, 'exfiltration risk');
    const hit = paste.json.trace.find((t) => t.rule === 'no-paste-sites');
    assert.equal(hit.matched, true);
    assert.match(hit.why, /args_domain/);

    const approve = await ev('pol-strict', { identity: 'agent', tool: 'fs__write_file', arguments: { path: `${ws}/x` }, class: 'destructive' });
    assert.equal(approve.json.decision, 'approve', approve.body);
    assert.equal(approve.json.rule, 'agents-may-write');
    assert.equal(approve.json.escalated, true);

    // errors: unknown tenant, unknown identity, not an object
    assert.equal((await ev('no-such-tenant', { identity: 'agent', tool: 'ev__echo' })).status, 404);
    assert.equal((await ev('pol-strict', { identity: 'nobody', tool: 'ev__echo' })).status, 400);
    assert.equal((await ev('pol-strict', '[1,2]')).status, 400);
    assert.equal((await stack.admin.post('/tenants/pol-strict/policy/evaluate', { identity: 'agent', tool: 'ev__echo' }, { auth: null })).status, 401);
});

test('a shadow rule is evaluated and reported, never enforced', async () => {
    const r = await call(clients.p, 'ev__echo', { message: 'shadow-me please' });
    assert.ok(r.result && !r.result.isError, `the shadow deny changes nothing: ${JSON.stringify(r)}`);
    assert.equal(textOf(r.result), 'Echo: shadow-me please');

    const e = await stack.admin.post('/tenants/pol-paste/policy/evaluate', { identity: 'p', tool: 'ev__echo', arguments: { message: 'shadow-me please' } });
    assert.equal(e.status, 200, e.body);
    assert.equal(e.json.decision, 'allow', e.body);
    assert.equal(e.json.rule, 'default');
    assert.ok(e.json.shadow, `evaluate reports the shadow outcome: ${e.body}`);
    assert.equal(e.json.shadow.rule, 'try-block-shadow');
    assert.equal(e.json.shadow.decision, 'deny');
    const t = e.json.trace.find((x) => x.rule === 'try-block-shadow');
    assert.equal(t.shadow, true);
    assert.equal(t.matched, true);

    // without the trigger the shadow rule does not match and reports nothing
    const quiet = await stack.admin.post('/tenants/pol-paste/policy/evaluate', { identity: 'p', tool: 'ev__echo', arguments: { message: 'plain' } });
    assert.equal(quiet.json.decision, 'allow');
    assert.ok(!quiet.json.shadow, quiet.body);

    // a shadow rule does not outrank an enforcing one either: the paste deny still decides
    const both = await call(clients.p, 'ev__echo', { message: 'shadow-me https://pastebin.com/x' });
    assertDenied(both, 'no-paste-sites', 'shadow + paste');

    // the replica records the would-be decision in its log and in the call's audit row
    await waitFor(() => gate.logs().includes('shadow rule try-block-shadow would deny'), {
        timeoutMs: 5000,
        message: 'shadow decision in the replica log',
    });
    const row = await waitFor(
        async () =>
            (await auditRows(stack.dbUrl, "tenant = 'pol-paste' AND arguments->>'message' = 'shadow-me please'"))[0],
        { timeoutMs: 10000, intervalMs: 100, message: 'audit row of the shadowed call' },
    );
    assert.equal(row.decision, 'allow');
    assert.deepEqual(row.findings?.shadow, { rule: 'try-block-shadow', decision: 'deny', would_decide: true }, JSON.stringify(row));
});
