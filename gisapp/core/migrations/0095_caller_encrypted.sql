-- Call-back (issue 13): the caller's full number, encrypted at rest (AES-256-GCM, gisapp.core.callerkey).
-- The key is never in the database; without it only caller_masked is kept. Nothing else
-- (event log, live stream, exports, the layer API) ever carries this column.
ALTER TABLE incident ADD COLUMN caller_encrypted bytea;
COMMENT ON COLUMN incident.caller_encrypted IS
    'full caller number: 0x01 | key id (4) | nonce (12) | AES-256-GCM ciphertext+tag, AAD incident:<id>';
