-- Server-side bounds for every session of the application role (the role the functions and
-- this migration connect as), so that a statement a client abandoned ends on the server too,
-- instead of running on or waiting for a lock while its pooled connection is reused.
-- Role defaults, not `SET` per session: `SET` pins RDS Proxy sessions to one connection.
-- Each is below the functions' client-side bound (DB_STATEMENT_TIMEOUT_MS, 5 s in
-- template.yaml), so the server gives up first and the client gets a clean error (503):
--   lock_timeout 3 s       a request waiting on a row lock fails fast (55P03);
--   statement_timeout 4 s  no statement runs past the point the client still waits (57014);
--   idle_in_transaction_session_timeout 10 s
--                          a session left inside a transaction (a client that died or froze
--                          mid-transaction) is ended and its locks released; the relay
--                          writes after each publish call (at most PUBLISH_TIMEOUT_MS, 2 s),
--                          so its transactions are never idle that long.
-- Migrations run with their own longer bounds (SET LOCAL inside the migration transaction).
ALTER ROLE CURRENT_USER SET lock_timeout = '3s';
ALTER ROLE CURRENT_USER SET statement_timeout = '4s';
ALTER ROLE CURRENT_USER SET idle_in_transaction_session_timeout = '10s';
