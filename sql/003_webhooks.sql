-- sfconnect schema, version 3: the webhook outbox. An event is written in
-- the transaction of the state change it reports, then delivered by
-- sfconnectd (at least once). body is the exact JSON sent: never a token.

CREATE TABLE webhook_outbox (
    id               bigserial PRIMARY KEY,
    event_id         text NOT NULL UNIQUE CHECK (event_id ~ '^evt_[0-9a-f]{24}$'),
    org_id           bigint NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    type             text NOT NULL CHECK (type ~ '^integration\.[a-z]+$'),
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- Retries stop once next_attempt_at would pass window_start + the
    -- maximum age; a manual retry restarts the window.
    window_start     timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    -- The next try, or the end of the lease of a delivery in progress.
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    last_http_status integer,
    last_error       text CHECK (length(last_error) <= 300),
    delivered_at     timestamptz
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_outbox_org_pending ON webhook_outbox (org_id, id)
    WHERE status = 'pending';
CREATE INDEX webhook_outbox_status ON webhook_outbox (status, id);

-- Delivery attempts by outcome, for /metrics (every sfconnectd adds here).
CREATE TABLE webhook_attempt_counts (
    outcome  text PRIMARY KEY CHECK (outcome IN ('delivered', 'rejected', 'error', 'failed')),
    n        bigint NOT NULL DEFAULT 0
);
