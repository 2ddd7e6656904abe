-- SPDX-License-Identifier: Apache-2.0
--
-- The audit log (DESIGN.md §6): one row per decision, partitioned by month of ts
-- (UTC), with a DEFAULT partition so that an insert never fails for lack of a
-- partition. Each row carries its replica's sequence number and the hash of the
-- previous row of the same replica (tamper-evident chain, checked by
-- `sentinel-gate audit verify`). Never edit this file once merged.

CREATE TABLE audit_events (
    id                   text        NOT NULL,
    ts                   timestamptz NOT NULL,
    tenant               text,
    identity             text,
    session              text,
    replica              text        NOT NULL,
    request_id           text,
    method               text,
    tool                 text,
    upstream             text,
    class                text,
    decision             text        NOT NULL,
    rule                 text,
    reason               text,
    arguments            jsonb,
    result_size          integer,
    result_is_error      boolean,
    gate_latency_us      bigint,
    upstream_latency_us  bigint,
    findings             jsonb,
    approval_id          text,
    seq                  bigint      NOT NULL,
    prev_hash            text        NOT NULL,
    hash                 text        NOT NULL,
    PRIMARY KEY (id, ts)
) PARTITION BY RANGE (ts);

CREATE INDEX audit_events_tenant_ts ON audit_events (tenant, ts);
CREATE INDEX audit_events_replica_seq ON audit_events (replica, seq);

CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

COMMENT ON TABLE audit_events IS
    'Audit log, append-only, partitioned by month of ts (UTC); audit_events_default '
    'catches rows no monthly partition covers. Query it through the view audit_log.';

-- Rows are never updated or deleted one by one (retention drops whole partitions).
-- This guards against accidents, not malice: the hash chain detects tampering.
-- sg_audit_ensure_partitions lifts it (sg.audit_maintenance) while it moves rows.
CREATE FUNCTION sg_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('sg.audit_maintenance', true), '') = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION sg_audit_append_only();

-- Creates partition part for [lo, hi) when the DEFAULT partition already holds
-- rows of that range (PostgreSQL refuses the partition otherwise): the rows are
-- parked in a temporary table, the partition is created, and they are re-inserted.
CREATE FUNCTION sg_audit_move_out_of_default(part text, lo timestamptz, hi timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMPORARY TABLE sg_audit_moving (LIKE audit_events) ON COMMIT DROP;
    PERFORM set_config('sg.audit_maintenance', 'on', true);
    WITH moved AS (
        DELETE FROM audit_events_default WHERE ts >= lo AND ts < hi RETURNING *
    )
    INSERT INTO sg_audit_moving SELECT * FROM moved;
    PERFORM set_config('sg.audit_maintenance', 'off', true);
    EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    INSERT INTO audit_events SELECT * FROM sg_audit_moving;
    DROP TABLE sg_audit_moving;
END
$$;

-- Creates the monthly partitions from the current month (UTC) to months_ahead
-- months later, skipping those that exist; rows already in the DEFAULT partition
-- for a new month are moved into it. Returns the number of partitions created.
-- Safe to call concurrently (transaction-level advisory lock) and often: the
-- services call it periodically, e.g. SELECT sg_audit_ensure_partitions(2).
CREATE FUNCTION sg_audit_ensure_partitions(months_ahead int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    first_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    lo          timestamptz;
    hi          timestamptz;
    part        text;
    created     int := 0;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 120, not %', months_ahead;
    END IF;
    -- 0x5347415544495450 = 'SGAUDITP'
    PERFORM pg_advisory_xact_lock(6000836862968157264);
    FOR i IN 0..months_ahead LOOP
        lo := (first_month + make_interval(months => i)) AT TIME ZONE 'UTC';
        hi := (first_month + make_interval(months => i + 1)) AT TIME ZONE 'UTC';
        part := 'audit_events_' || to_char(first_month + make_interval(months => i), 'YYYY_MM');
        CONTINUE WHEN to_regclass(quote_ident(part)) IS NOT NULL;
        IF EXISTS (SELECT 1 FROM audit_events_default WHERE ts >= lo AND ts < hi) THEN
            PERFORM sg_audit_move_out_of_default(part, lo, hi);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                           part, lo, hi);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- The current month and the next two exist from the start.
SELECT sg_audit_ensure_partitions(2);
