-- Browser-bound OAuth states: the connect's start link and the nonce of the
-- browser that opened it. start_hash is the SHA-256 of the opaque start id
-- (start_url); authorize_url_enc the sealed authorize URL that the start
-- redirects to (it carries the raw state, so it is never stored in clear);
-- nonce_hash the SHA-256 of the cookie's nonce, set once by the start.
ALTER TABLE oauth_states
    ADD COLUMN start_hash        text UNIQUE,
    ADD COLUMN authorize_url_enc text,
    ADD COLUMN nonce_hash        text;
