-- Cost that does not grow with the number of orgs (issue 13, step 4).
--
-- 1. The check claim walks an index in its due order (the oldest check
--    first, never-checked ones before all) and stops at the cutoff; due
--    retries come from their own small index.
-- 2. /metrics reads the status counts from integration_status_counts, kept
--    by statement triggers: each statement appends its deltas (no row is
--    updated in place, so concurrent writers never wait for each other);
--    housekeeping folds them (ST_STATUS_COUNTS_COMPACT). The check-lag
--    gauge reads the first entry of an index per checked status.
-- 3. The status-filtered admin list pages through (status, org slug): the
--    slug is copied into integrations (orgs' slugs never change); an
--    INSERT that makes the org in the same statement (whose row trigger
--    cannot see that org yet) gets it after the statement.

CREATE INDEX integrations_due ON integrations
    (status, (coalesce(last_checked_at, '-infinity'::timestamptz)), org_id)
    WHERE status <> 'disconnected';
CREATE INDEX integrations_retry ON integrations (next_retry_at)
    WHERE status IN ('degraded', 'invalid') AND next_retry_at IS NOT NULL;
CREATE INDEX integrations_check_age ON integrations
    (status, (coalesce(last_checked_at, connected_at, updated_at)))
    WHERE status IN ('connected', 'degraded');

ALTER TABLE integrations ADD COLUMN org_slug text;
UPDATE integrations i SET org_slug = o.slug FROM orgs o WHERE o.id = i.org_id;

CREATE FUNCTION integrations_copy_slug() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.org_slug IS NULL THEN
        SELECT slug INTO NEW.org_slug FROM orgs WHERE id = NEW.org_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER integrations_copy_slug BEFORE INSERT ON integrations
    FOR EACH ROW EXECUTE FUNCTION integrations_copy_slug();

CREATE INDEX integrations_status_slug ON integrations (status, org_slug);
DROP INDEX integrations_status;

-- The count of integrations per status: the sum of n over its rows.
CREATE TABLE integration_status_counts (
    status  text NOT NULL,
    n       bigint NOT NULL
);

CREATE FUNCTION integrations_count_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE integrations i SET org_slug = o.slug FROM new_rows r, orgs o
        WHERE r.org_slug IS NULL AND i.org_id = r.org_id AND o.id = r.org_id;
    INSERT INTO integration_status_counts (status, n)
        SELECT status, count(*) FROM new_rows GROUP BY status;
    RETURN NULL;
END $$;
CREATE FUNCTION integrations_count_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO integration_status_counts (status, n)
        SELECT status, -count(*) FROM old_rows GROUP BY status;
    RETURN NULL;
END $$;
-- Most updates (a refresh, a check) keep the status: they add nothing.
CREATE FUNCTION integrations_count_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO integration_status_counts (status, n)
        SELECT status, sum(d) FROM (
            SELECT status, 1 AS d FROM new_rows
            UNION ALL SELECT status, -1 FROM old_rows) x
        GROUP BY status HAVING sum(d) <> 0;
    RETURN NULL;
END $$;
CREATE TRIGGER integrations_count_insert AFTER INSERT ON integrations
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integrations_count_insert();
CREATE TRIGGER integrations_count_delete AFTER DELETE ON integrations
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integrations_count_delete();
CREATE TRIGGER integrations_count_update AFTER UPDATE ON integrations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION integrations_count_update();

CREATE FUNCTION integrations_count_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM integration_status_counts;
    RETURN NULL;
END $$;
CREATE TRIGGER integrations_count_truncate AFTER TRUNCATE ON integrations
    FOR EACH STATEMENT EXECUTE FUNCTION integrations_count_truncate();

-- The triggers hold their lock until this migration commits: no write
-- slips between them and the first counts.
INSERT INTO integration_status_counts (status, n)
    SELECT status, count(*) FROM integrations GROUP BY status;
