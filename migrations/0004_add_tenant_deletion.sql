-- Tenants can be deleted (a history row marks it) and keep the exact stored text, so Redis can
-- be re-seeded byte for byte (replicas fingerprint upstream definitions by their bytes).
ALTER TABLE tenants ADD COLUMN deleted boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD COLUMN config_text text;

COMMENT ON COLUMN tenants.deleted IS 'true on the row that records the deletion of the tenant';
COMMENT ON COLUMN tenants.config_text IS
    'the stored document exactly as written to Redis (config holds the same as jsonb)';

CREATE OR REPLACE VIEW tenants_current AS
    SELECT DISTINCT ON (tenant) tenant, version, config, created_at, created_by, deleted,
           config_text
    FROM tenants
    ORDER BY tenant, version DESC;
