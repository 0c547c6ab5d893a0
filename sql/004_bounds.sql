-- Bounded growth: indexes for the keyset-paginated key list (all keys, and
-- one org's), the per-org cap on pending OAuth states, and audit pruning.

CREATE INDEX api_keys_created ON api_keys (created_at, id);
CREATE INDEX api_keys_org_created ON api_keys (org_id, created_at, id);
CREATE INDEX oauth_states_org_created ON oauth_states (org_id, created_at);
CREATE INDEX audit_events_at ON audit_events (at);
