-- What each worker caches (issue 13, step 3): a key's principal, the org
-- a path names and that org's integration row. Every statement that
-- changes one of them announces it on the channel sfconnect_cache, sent
-- at its transaction's commit (and never when it rolls back):
--   k:<api key id>   a key changed (created, revoked, deleted);
--   o:<org id>       an org or its integration changed;
--   *                more than 64 rows, or a TRUNCATE: forget everything.
-- PostgreSQL folds identical payloads of one transaction into one.

CREATE FUNCTION sfconnect_cache_announce(payloads text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(payloads) > 64 THEN
        PERFORM pg_notify('sfconnect_cache', '*');
    ELSE
        PERFORM pg_notify('sfconnect_cache', p) FROM unnest(payloads) p;
    END IF;
END $$;

-- The rows' payloads: TG_ARGV[0] the prefix, TG_ARGV[1] the column that
-- names the key or the org (api_keys.id; orgs.id, integrations.org_id).
CREATE FUNCTION sfconnect_cache_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('sfconnect_cache', '*');
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM sfconnect_cache_announce(ARRAY(SELECT DISTINCT
            TG_ARGV[0] || (to_jsonb(r) ->> TG_ARGV[1]) FROM new_rows r));
    ELSE
        PERFORM sfconnect_cache_announce(ARRAY(SELECT DISTINCT
            TG_ARGV[0] || (to_jsonb(r) ->> TG_ARGV[1]) FROM old_rows r));
    END IF;
    RETURN NULL;
END $$;

-- A trigger with transition tables serves one event: one per event.
CREATE TRIGGER api_keys_cache_insert AFTER INSERT ON api_keys
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('k:', 'id');
CREATE TRIGGER api_keys_cache_update AFTER UPDATE ON api_keys
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('k:', 'id');
CREATE TRIGGER api_keys_cache_delete AFTER DELETE ON api_keys
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('k:', 'id');
CREATE TRIGGER api_keys_cache_truncate AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('k:', 'id');

CREATE TRIGGER orgs_cache_insert AFTER INSERT ON orgs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('o:', 'id');
CREATE TRIGGER orgs_cache_update AFTER UPDATE ON orgs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('o:', 'id');
CREATE TRIGGER orgs_cache_delete AFTER DELETE ON orgs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('o:', 'id');
CREATE TRIGGER orgs_cache_truncate AFTER TRUNCATE ON orgs
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('o:', 'id');

CREATE TRIGGER integrations_cache_insert AFTER INSERT ON integrations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('o:', 'org_id');
CREATE TRIGGER integrations_cache_update AFTER UPDATE ON integrations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('o:', 'org_id');
CREATE TRIGGER integrations_cache_delete AFTER DELETE ON integrations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('o:', 'org_id');
CREATE TRIGGER integrations_cache_truncate AFTER TRUNCATE ON integrations
    FOR EACH STATEMENT EXECUTE FUNCTION sfconnect_cache_rows('o:', 'org_id');
