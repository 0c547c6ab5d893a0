-- sfconnect schema, version 1: orgs, API keys, integrations, OAuth states, audit.

CREATE TABLE orgs (
    id          bigserial PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]{1,63}$'),
    name        text NOT NULL CHECK (length(name) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            text PRIMARY KEY CHECK (id ~ '^key_[0-9a-f]{16}$'),
    org_id        bigint REFERENCES orgs(id) ON DELETE CASCADE,
    role          text NOT NULL CHECK (role IN ('viewer', 'admin', 'service', 'operator')),
    label         text NOT NULL DEFAULT '' CHECK (length(label) <= 120),
    key_hash      text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    CHECK ((role = 'operator') = (org_id IS NULL))
);

-- One row per org, made with the org; "disconnected" holds no tokens.
CREATE TABLE integrations (
    org_id              bigint PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    status              text NOT NULL DEFAULT 'disconnected'
                        CHECK (status IN ('disconnected', 'connected', 'degraded', 'invalid')),
    sf_org_id           text CHECK (sf_org_id ~ '^00D[A-Za-z0-9]{15}$'),
    sf_user_id          text CHECK (sf_user_id ~ '^005[A-Za-z0-9]{15}$'),
    sf_username         text,
    sf_display_name     text,
    instance_url        text,
    environment         text CHECK (environment IN ('production', 'sandbox')),
    login_host          text,
    access_token_enc    text,
    refresh_token_enc   text,
    token_generation    bigint NOT NULL DEFAULT 0,
    issued_at           timestamptz,
    connected_at        timestamptz,
    connected_by        text,
    last_refreshed_at   timestamptz,
    last_checked_at     timestamptz,
    last_error_kind     text CHECK (last_error_kind IN ('invalid', 'transient', 'config')),
    last_error_code     text,
    last_error_message  text,
    last_error_at       timestamptz,
    previous_sf_org_id  text,
    failure_count       integer NOT NULL DEFAULT 0,
    next_retry_at       timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'disconnected' OR (access_token_enc IS NULL AND refresh_token_enc IS NULL))
);
CREATE INDEX integrations_status ON integrations (status);

-- Single-use OAuth states: only the SHA-256 of the state is kept.
CREATE TABLE oauth_states (
    state_hash        text PRIMARY KEY,
    org_id            bigint NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    verifier_enc      text NOT NULL,
    environment       text NOT NULL,
    login_host        text NOT NULL,
    return_to         text NOT NULL,
    allow_org_change  boolean NOT NULL DEFAULT false,
    actor             text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);

CREATE TABLE audit_events (
    id      bigserial PRIMARY KEY,
    org_id  bigint NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_org ON audit_events (org_id, id DESC);
