-- SPDX-License-Identifier: Apache-2.0
--
-- Read-only access for auditors (DESIGN.md §6): the documented views audit_log
-- and admin_log, and the NOLOGIN role sg_auditor that may read them and nothing
-- else. Grant it to a login role of your own:
--     CREATE ROLE alice LOGIN PASSWORD '…' IN ROLE sg_auditor;
-- Never edit this file once merged.

CREATE VIEW audit_log AS
    SELECT id, ts, tenant, identity, session, replica, request_id, method, tool, upstream,
           class, decision, rule, reason, arguments, result_size, result_is_error,
           gate_latency_us, upstream_latency_us, findings, approval_id, seq, prev_hash, hash
    FROM audit_events;

COMMENT ON VIEW audit_log IS
    'Every decision the gate replicas made, one row per event (read-only).';
COMMENT ON COLUMN audit_log.id IS 'Event id, unique together with ts.';
COMMENT ON COLUMN audit_log.ts IS 'When the gate decided (UTC).';
COMMENT ON COLUMN audit_log.tenant IS 'Tenant of the caller; NULL before authentication.';
COMMENT ON COLUMN audit_log.identity IS 'Authenticated agent identity within the tenant.';
COMMENT ON COLUMN audit_log.session IS 'MCP session id (Mcp-Session-Id).';
COMMENT ON COLUMN audit_log.replica IS 'Gate replica that wrote the row.';
COMMENT ON COLUMN audit_log.request_id IS 'Request id, also present in the replica''s logs.';
COMMENT ON COLUMN audit_log.method IS 'MCP method (tools/call, tools/list, ...).';
COMMENT ON COLUMN audit_log.tool IS 'Tool name for tools/call.';
COMMENT ON COLUMN audit_log.upstream IS 'Upstream MCP server the call was (or would be) sent to.';
COMMENT ON COLUMN audit_log.class IS 'Risk class of the tool.';
COMMENT ON COLUMN audit_log.decision IS 'Outcome: allow, deny, approval outcome, error ...';
COMMENT ON COLUMN audit_log.rule IS 'Policy rule that decided, if any.';
COMMENT ON COLUMN audit_log.reason IS 'Human-readable reason of the decision.';
COMMENT ON COLUMN audit_log.arguments IS 'Tool arguments with detected secrets redacted.';
COMMENT ON COLUMN audit_log.result_size IS 'Size of the upstream result in bytes.';
COMMENT ON COLUMN audit_log.result_is_error IS 'Whether the upstream result was an error.';
COMMENT ON COLUMN audit_log.gate_latency_us IS 'Time spent in the gate, microseconds.';
COMMENT ON COLUMN audit_log.upstream_latency_us IS 'Time spent waiting for the upstream, microseconds.';
COMMENT ON COLUMN audit_log.findings IS 'Scanner findings (detector names and locations, no matched text).';
COMMENT ON COLUMN audit_log.approval_id IS 'Approval that held the call (approvals.id).';
COMMENT ON COLUMN audit_log.seq IS 'Per-replica sequence number of the row.';
COMMENT ON COLUMN audit_log.prev_hash IS 'hash of the previous row of the same replica.';
COMMENT ON COLUMN audit_log.hash IS 'Hash of this row chained to prev_hash.';

CREATE VIEW admin_log AS
    SELECT id, ts, actor, action, tenant, target, details, request_id
    FROM admin_actions;

COMMENT ON VIEW admin_log IS
    'Every control-plane action (bootstrap, policy change, approval decision, kill switch), read-only.';
COMMENT ON COLUMN admin_log.actor IS 'Who acted (admin token name or user).';
COMMENT ON COLUMN admin_log.action IS 'What was done, e.g. tenant.bootstrap, approval.decide.';
COMMENT ON COLUMN admin_log.target IS 'What it was done to (tenant version, approval id, ...).';
COMMENT ON COLUMN admin_log.details IS 'Action details with secrets redacted.';

-- Roles are cluster-wide: create it only if absent, tolerate a concurrent creator
-- (another database of the same cluster), and do not fail the migration where
-- the migrating user may not create roles (the views still exist; grant by hand).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sg_auditor') THEN
        BEGIN
            CREATE ROLE sg_auditor NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role sg_auditor not created (no CREATEROLE privilege): '
                              'create it and grant SELECT on audit_log, admin_log';
                RETURN;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO sg_auditor', current_schema());
    GRANT SELECT ON audit_log, admin_log TO sg_auditor;
END
$$;
