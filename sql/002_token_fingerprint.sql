-- sfconnect schema, version 2: the refresh token's fingerprint.
--
-- The first 16 hex digits of the SHA-256 of the stored refresh token. After a
-- COMMIT whose reply was lost, sfconnectd re-reads the row and compares
-- fingerprints (nothing needs decrypting) to learn whether its write landed:
-- a token is revoked only when it is provably not the stored one. NULL for
-- rows written before this version (their outcome is then never guessed).
ALTER TABLE integrations ADD COLUMN refresh_token_fp text
    CHECK (refresh_token_fp ~ '^[0-9a-f]{16}$');
