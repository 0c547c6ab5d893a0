-- Bulk checks as jobs (docs/API.md, "Check jobs"). A job's scope is the
-- snapshot of the integrations that were due when it was created
-- (check_job_items); any checker process of any host claims the due rows
-- (cutoff, statuses) batch by batch with FOR UPDATE SKIP LOCKED, so a job
-- survives a restart and several hosts share it. An item counts as checked
-- once its integration's last_checked_at is at or after created_at. When
-- none is due any more the counts are frozen here and the items deleted.
CREATE TABLE check_jobs (
    id          bigserial PRIMARY KEY,
    state       text NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'finished')),
    status_set  integer NOT NULL,
    statuses    text[] NOT NULL,
    cutoff      timestamptz NOT NULL,
    actor       text NOT NULL,
    total       integer NOT NULL,
    checked     integer NOT NULL DEFAULT 0,
    connected   integer NOT NULL DEFAULT 0,
    degraded    integer NOT NULL DEFAULT 0,
    invalid     integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX check_jobs_running ON check_jobs (id) WHERE state = 'running';

CREATE TABLE check_job_items (
    job_id bigint NOT NULL,
    org_id bigint NOT NULL,
    PRIMARY KEY (job_id, org_id)
);
