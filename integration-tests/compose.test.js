// SPDX-License-Identifier: Apache-2.0
//
// docker-compose.yml and ops/haproxy.cfg describe the same fleet as the loopback topology the
// fleet tests run (lib/fleet.js): three gate replicas, haproxy, Redis, PostgreSQL, the control
// plane and a one-shot migrate (issue 7). No Docker engine runs here: the files are read and
// checked, never run. haproxy's own config check (`haproxy -c`) runs when haproxy is installed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import YAML from 'yaml';

import { SG_BIN, SOURCE_DIR } from './lib/harness.js';
import { DEFAULT_REPLICAS, haproxyConfig } from './lib/fleet.js';

const COMPOSE_FILE = path.join(SOURCE_DIR, 'docker-compose.yml');
const HAPROXY_CFG = path.join(SOURCE_DIR, 'ops', 'haproxy.cfg');
const DOCKERFILE = path.join(SOURCE_DIR, 'ops', 'Dockerfile');

const GATES = Array.from({ length: DEFAULT_REPLICAS }, (_, i) => `gate-${i + 1}`);
const SERVICES = ['redis', 'postgres', 'migrate', ...GATES, 'control', 'haproxy'];

function loadCompose() {
    const text = fs.readFileSync(COMPOSE_FILE, 'utf8');
    // Compose reads YAML 1.2 with merge keys (<<: *anchor)
    const doc = YAML.parse(text, { merge: true, strict: true, uniqueKeys: true, maxAliasCount: 1000 });
    assert.equal(typeof doc, 'object', 'the compose file is a mapping');
    return doc;
}

/** environment as a map, from either the mapping or the list ("K=V") form. */
function envOf(service) {
    const e = service.environment ?? {};
    if (Array.isArray(e)) {
        return Object.fromEntries(
            e.map((kv) => {
                const i = String(kv).indexOf('=');
                return i < 0 ? [kv, undefined] : [kv.slice(0, i), kv.slice(i + 1)];
            }),
        );
    }
    return e;
}

/** depends_on as {service: condition}, from either the list or the mapping form. */
function dependsOn(service) {
    const d = service.depends_on ?? {};
    if (Array.isArray(d)) return Object.fromEntries(d.map((n) => [n, 'service_started']));
    return Object.fromEntries(Object.entries(d).map(([n, v]) => [n, v?.condition ?? 'service_started']));
}

/** The command as an array ("migrate" or ["migrate"]). */
const commandOf = (service) => (service.command === undefined ? undefined : [].concat(service.command).join(' ').split(/\s+/));

/** Dockerfile facts: stages, the runtime user, HEALTHCHECK, ENTRYPOINT, CMD, ENV. */
function dockerfile() {
    const lines = fs
        .readFileSync(DOCKERFILE, 'utf8')
        .replace(/\\\n/g, ' ')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'));
    const from = lines.filter((l) => /^FROM\s/i.test(l)).map((l) => l.split(/\s+/)[1]);
    const last = (kw) => [...lines].reverse().find((l) => l.toUpperCase().startsWith(`${kw} `));
    const json = (l) => (l ? JSON.parse(l.slice(l.indexOf('['))) : undefined);
    const env = {};
    for (const l of lines.filter((x) => /^ENV\s/i.test(x))) {
        for (const m of l.slice(4).matchAll(/([A-Z_][A-Z0-9_]*)=(\S+)/g)) env[m[1]] = m[2];
    }
    return {
        from,
        user: last('USER')?.split(/\s+/)[1],
        healthcheck: last('HEALTHCHECK'),
        entrypoint: json(last('ENTRYPOINT')),
        cmd: json(last('CMD')),
        env,
    };
}

/** host:port of a listen address ("0.0.0.0:8080" → 8080). */
const portOf = (listen) => Number(String(listen).split(':').pop());

/** The healthcheck test of a service as one string (CMD / CMD-SHELL forms). */
function healthTest(service) {
    const t = service.healthcheck?.test;
    if (t === undefined) return undefined;
    return [].concat(t).filter((x) => x !== 'CMD' && x !== 'CMD-SHELL').join(' ');
}

/* A small haproxy.cfg reader: {section header → [directive lines]}, comments dropped. */
function parseHaproxy(text) {
    const sections = new Map();
    let current = null;
    for (const raw of text.split('\n')) {
        const line = raw.replace(/(^|\s)#.*$/, '').trim();
        if (line === '') continue;
        if (/^(global|defaults|frontend|backend|listen|resolvers|peers|userlist|program|cache)(\s|$)/.test(line) && !/^\s/.test(raw)) {
            current = line.replace(/\s+/g, ' ');
            sections.set(current, []);
        } else if (current !== null) {
            sections.get(current).push(line.replace(/\s+/g, ' '));
        }
    }
    return sections;
}

/** The lines of a section whose first word(s) start with prefix. */
const directives = (sections, section, prefix) => (sections.get(section) ?? []).filter((l) => l === prefix || l.startsWith(`${prefix} `));

/** server lines of a backend as {name, host, port, opts}, with default-server options merged in. */
function servers(sections, backend) {
    const defaults = directives(sections, backend, 'default-server').flatMap((l) => l.split(' ').slice(1));
    return directives(sections, backend, 'server').map((l) => {
        const [, name, addr, ...opts] = l.split(' ');
        const i = addr.lastIndexOf(':');
        return { name, host: addr.slice(0, i), port: Number(addr.slice(i + 1)), opts: [...defaults, ...opts] };
    });
}

/** Value of "option" flags in an options list: ["check", "inter", "1s"] → has('check'), get('inter'). */
const optsHas = (opts, o) => opts.includes(o);

/** The load-balancing policy of a config: what must be the same in the harness and in ops/. */
function policy(sections) {
    const pick = (section, prefix) => directives(sections, section, prefix).sort();
    const fe = [...sections.keys()].find((k) => k.startsWith('frontend '));
    return {
        defaults: ['retries', 'option redispatch', 'timeout client', 'timeout server'].flatMap((p) => pick('defaults', p)),
        frontendRouting: ['acl', 'use_backend', 'default_backend'].flatMap((p) => pick(fe, p)),
        gates: ['balance', 'option httpchk', 'http-check'].flatMap((p) => pick('backend gates', p)),
        control: ['balance', 'option httpchk', 'http-check'].flatMap((p) => pick('backend control', p)),
    };
}

/* ------------------------------------------------------------------------------------------ */

test('compose: the fleet services, and nothing else', () => {
    const doc = loadCompose();
    assert.deepEqual(Object.keys(doc.services).sort(), [...SERVICES].sort());
    assert.equal(GATES.length, 3, 'three gate replicas, like the harness');
});

test('compose: gate replicas are built from ops/Dockerfile and set what a replica needs', () => {
    const { services } = loadCompose();
    const df = dockerfile();
    const images = new Set();
    const ids = new Set();
    for (const name of GATES) {
        const s = services[name];
        assert.ok(s.build, `${name}: built, not pulled`);
        const build = typeof s.build === 'string' ? { context: s.build } : s.build;
        assert.equal(path.resolve(SOURCE_DIR, build.context), SOURCE_DIR, `${name}: build context is the repository`);
        assert.equal(path.resolve(SOURCE_DIR, build.context, build.dockerfile ?? 'Dockerfile'), DOCKERFILE, `${name}: ops/Dockerfile`);
        if (s.image) images.add(s.image);

        const cmd = commandOf(s) ?? df.cmd;
        assert.deepEqual(cmd, ['gate'], `${name}: runs \`sentinel-gate gate\``);
        assert.equal(s.init, true, `${name}: init: true (the gate spawns stdio upstreams; orphans must be reaped)`);

        const env = envOf(s);
        assert.match(env.SG_REDIS_URL ?? '', /^redis:\/\/redis:6379(\/\d+)?$/, `${name}: SG_REDIS_URL points at the redis service`);
        assert.match(env.SG_DATABASE_URL ?? '', /^postgres(ql)?:\/\/[^@]+@postgres:5432\/\w+/, `${name}: SG_DATABASE_URL points at the postgres service`);
        assert.match(env.SG_LISTEN ?? '', /^0\.0\.0\.0:\d+$/, `${name}: SG_LISTEN on every interface of the container`);
        assert.equal(env.SG_REPLICA_ID, name, `${name}: SG_REPLICA_ID names the replica`);
        ids.add(env.SG_REPLICA_ID);
        assert.equal(env.SG_ADMIN_TOKEN, undefined, `${name}: a gate replica does not get the admin token`);

        const port = portOf(env.SG_LISTEN);
        const health = healthTest(s) ?? df.healthcheck;
        assert.ok(health, `${name}: has a health check`);
        assert.match(health, new RegExp(`127\\.0\\.0\\.1:${port}/readyz\\b`), `${name}: the health check asks /readyz on the listen port`);
        assert.equal(s.ports, undefined, `${name}: not published; agents come through haproxy`);

        assert.deepEqual(
            dependsOn(s),
            { redis: 'service_healthy', migrate: 'service_completed_successfully' },
            `${name}: starts after Redis is healthy and the migration has completed`,
        );
        if (s.stop_grace_period !== undefined) {
            const secs = Number(String(s.stop_grace_period).replace(/s$/, ''));
            assert.ok(secs > 10, `${name}: stop_grace_period (${s.stop_grace_period}) longer than the default drain (SG_DRAIN_MS 10 s)`);
        }
    }
    assert.equal(ids.size, GATES.length, 'replica ids are distinct');
    assert.ok(images.size <= 1, `one image for every replica: ${[...images]}`);
});

test('compose: control plane, migrate, Redis and PostgreSQL', () => {
    const { services } = loadCompose();
    const df = dockerfile();

    const control = services.control;
    assert.deepEqual(commandOf(control), ['control']);
    const cenv = envOf(control);
    assert.match(cenv.SG_REDIS_URL ?? '', /^redis:\/\/redis:6379/);
    assert.match(cenv.SG_DATABASE_URL ?? '', /@postgres:5432\//);
    assert.match(cenv.SG_LISTEN ?? '', /^0\.0\.0\.0:\d+$/);
    assert.match(
        String(cenv.SG_ADMIN_TOKEN),
        /^\$\{SG_ADMIN_TOKEN:\?[^}]*\}$/,
        'SG_ADMIN_TOKEN comes from the operator (required interpolation), never a literal in the file',
    );
    assert.match(healthTest(control) ?? '', new RegExp(`127\\.0\\.0\\.1:${portOf(cenv.SG_LISTEN)}/readyz\\b`), 'control: readiness health check on its port');
    assert.deepEqual(dependsOn(control), { redis: 'service_healthy', migrate: 'service_completed_successfully' });
    assert.equal(control.ports, undefined, 'control: reached through haproxy (/admin)');

    const migrate = services.migrate;
    assert.deepEqual(commandOf(migrate), ['migrate']);
    assert.ok(migrate.build, 'migrate: the same image, built');
    assert.match(envOf(migrate).SG_DATABASE_URL ?? '', /@postgres:5432\//);
    assert.deepEqual(dependsOn(migrate), { postgres: 'service_healthy' });
    assert.ok([undefined, 'no', false].includes(migrate.restart), `migrate is one-shot (restart: ${migrate.restart})`);

    // every SG_* database URL agrees with the postgres service's credentials
    const penv = envOf(services.postgres);
    for (const name of ['migrate', 'control', ...GATES]) {
        const u = new URL(envOf(services[name]).SG_DATABASE_URL);
        assert.equal(decodeURIComponent(u.username), penv.POSTGRES_USER, `${name}: database user`);
        assert.equal(decodeURIComponent(u.password), penv.POSTGRES_PASSWORD, `${name}: database password`);
        assert.equal(u.pathname.slice(1), penv.POSTGRES_DB, `${name}: database name`);
    }

    assert.match(String(services.redis.image), /^redis:\d/);
    assert.match(healthTest(services.redis) ?? '', /redis-cli ping/);
    assert.match(String(services.postgres.image), /^postgres:\d/);
    assert.match(healthTest(services.postgres) ?? '', /pg_isready/);

    // the Dockerfile the replicas are built from (issue 7): multi-stage bookworm, non-root, /readyz
    assert.ok(df.from.length >= 2 && df.from.every((f) => /bookworm/.test(f)), `multi-stage Debian bookworm: ${df.from}`);
    assert.ok(df.user && df.user !== 'root' && df.user !== '0', `runs as a non-root user (${df.user})`);
    assert.match(df.healthcheck ?? '', /\/readyz/);
    assert.deepEqual(df.cmd, ['gate'], 'the image runs a gate replica by default');
});

test('compose: every SG_* variable is a setting the binary knows', async (t) => {
    try {
        fs.accessSync(SG_BIN, fs.constants.X_OK);
    } catch {
        t.skip(`SG_BIN ${SG_BIN} not built`);
        return;
    }
    const help = await new Promise((resolve) => {
        execFile(SG_BIN, ['--help'], { timeout: 10000, env: { PATH: process.env.PATH } }, (err, stdout, stderr) => resolve(`${stdout}${stderr}`));
    });
    const known = new Set([...help.matchAll(/^\s+(SG_[A-Z0-9_]+)\s/gm)].map((m) => m[1]));
    assert.ok(known.has('SG_REDIS_URL') && known.has('SG_LISTEN'), `settings listed by --help: ${[...known]}`);
    const { services } = loadCompose();
    for (const [name, s] of Object.entries(services)) {
        for (const k of Object.keys(envOf(s)).filter((x) => x.startsWith('SG_'))) {
            assert.ok(known.has(k), `${name}: ${k} is not a setting of sentinel-gate (--help lists ${[...known].join(', ')})`);
        }
    }
    // the settings --help marks as required for the control plane are all set on it
    const required = [...help.matchAll(/^\s+(SG_[A-Z0-9_]+)\s.*\[required for ([^\]]+)\]/gm)]
        .filter((m) => m[2].split(/,\s*/).includes('control'))
        .map((m) => m[1]);
    for (const k of required) assert.ok(k in envOf(services.control), `control: ${k} is required by the binary`);
});

test('compose: haproxy fronts the replicas with ops/haproxy.cfg, the same policy as the harness', async () => {
    const { services } = loadCompose();
    const lb = services.haproxy;
    assert.match(String(lb.image), /^haproxy:\d/, 'the official haproxy image');
    const mounts = [].concat(lb.volumes ?? []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}${v.read_only ? ':ro' : ''}`));
    const cfgMount = mounts.find((m) => m.split(':')[1] === '/usr/local/etc/haproxy/haproxy.cfg');
    assert.ok(cfgMount, `ops/haproxy.cfg mounted where the image reads its config: ${mounts}`);
    assert.equal(path.resolve(SOURCE_DIR, cfgMount.split(':')[0]), HAPROXY_CFG);
    assert.ok(cfgMount.endsWith(':ro'), 'mounted read-only');
    const deps = dependsOn(lb);
    for (const n of [...GATES, 'control']) assert.ok(n in deps, `haproxy depends on ${n}`);

    // only the load balancer is published
    for (const [name, s] of Object.entries(services)) {
        if (name !== 'haproxy') assert.equal(s.ports, undefined, `${name} is not published`);
    }
    const published = [].concat(lb.ports ?? []).map(String);
    assert.equal(published.length, 1, `haproxy publishes one port: ${published}`);
    const containerPort = Number(published[0].split(':').pop().split('/')[0]);

    const cfg = parseHaproxy(fs.readFileSync(HAPROXY_CFG, 'utf8'));
    const fe = [...cfg.keys()].filter((k) => k.startsWith('frontend '));
    assert.equal(fe.length, 1, 'one frontend');
    const binds = directives(cfg, fe[0], 'bind').map((l) => Number(l.split(' ')[1].split(':').pop()));
    assert.deepEqual(binds, [containerPort], 'the frontend listens on the published port');

    // the replicas of the compose file, on their listen ports, checked
    const gateServers = servers(cfg, 'backend gates');
    assert.deepEqual(
        gateServers.map((s) => `${s.name} ${s.host}:${s.port}`),
        GATES.map((g) => `${g} ${g}:${portOf(envOf(services[g]).SG_LISTEN)}`),
        'backend gates: one server per replica service',
    );
    for (const s of gateServers) {
        assert.ok(optsHas(s.opts, 'check'), `${s.name} is health-checked`);
        assert.ok(optsHas(s.opts, 'resolvers') && s.opts.includes('init-addr'), `${s.name}: resolved at run time (starts before the replica exists)`);
    }
    const controlServers = servers(cfg, 'backend control');
    assert.deepEqual(
        controlServers.map((s) => `${s.host}:${s.port}`),
        [`control:${portOf(envOf(services.control).SG_LISTEN)}`],
        'backend control: the control service',
    );
    assert.ok(optsHas(controlServers[0].opts, 'check'));
    assert.ok(
        directives(cfg, [...cfg.keys()].find((k) => k.startsWith('resolvers ')) ?? '', 'nameserver').some((l) => l.endsWith('127.0.0.11:53')),
        "Docker's embedded DNS as resolver",
    );

    // the same load-balancing policy as the loopback harness (lib/fleet.js)
    const harness = parseHaproxy(
        haproxyConfig({ port: 1, statsSocket: '/x', gates: GATES.map((name, i) => ({ name, port: 2 + i })), controlPort: 9 }),
    );
    assert.deepEqual(policy(cfg), policy(harness), 'routing, balancing, health checks, retries and timeouts as in the harness');
    assert.deepEqual(directives(cfg, 'backend gates', 'balance'), ['balance roundrobin']);
    assert.deepEqual(directives(cfg, 'backend gates', 'option httpchk'), ['option httpchk GET /healthz'], 'the LB checks /healthz (a fail-closed replica still answers -31007)');
});

test('ops/haproxy.cfg passes haproxy -c', async (t) => {
    const r = await new Promise((resolve) => {
        execFile(process.env.SG_HAPROXY || 'haproxy', ['-c', '-f', HAPROXY_CFG], { timeout: 10000 }, (err, stdout, stderr) =>
            resolve({ err, out: `${stdout}${stderr}` }),
        );
    });
    if (r.err && r.err.code === 'ENOENT') {
        t.skip('haproxy is not installed');
        return;
    }
    assert.equal(r.err, null, `haproxy -c:\n${r.out}`);
    // outside Docker the service names do not resolve; nothing else may be warned about
    const warnings = r.out.split('\n').filter((l) => /\[WARNING\]|\[ALERT\]/.test(l));
    const other = warnings.filter((l) => !/could not resolve address '(gate-\d+|control)', disabling server/.test(l));
    assert.deepEqual(other, [], 'no warnings but the unresolvable service names');
});
