-- The OAuth scope Salesforce granted at the last connect (the token
-- response's "scope"), shown in the status object.
ALTER TABLE integrations ADD COLUMN scope text;

-- Invalid integrations whose last error may heal by itself (IP restrictions,
-- login hours) are re-checked when next_retry_at comes; those made invalid
-- before this version get their first re-check now.
UPDATE integrations SET next_retry_at = now()
WHERE status = 'invalid' AND lower(last_error_code) = 'invalid_grant'
AND lower(last_error_message) = 'ip restricted or invalid login hours';
