-- Idempotency keys for commands: the first request with a key stores its response in the same
-- transaction as the change; a retry with the same key and body gets that response back.

CREATE TABLE idempotency_keys (
    scope         text        NOT NULL,
    key           text        NOT NULL,
    -- md5 of the canonical request, to tell a retry from a different request reusing the key.
    request_hash  text        NOT NULL,
    order_id      uuid        NOT NULL,
    status_code   smallint    NOT NULL,
    response_body jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
