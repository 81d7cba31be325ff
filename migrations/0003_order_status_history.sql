-- The history of each order's status changes, written with the change it records.

CREATE TABLE order_status_history (
    order_id    uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    version     bigint      NOT NULL,
    from_status text        NOT NULL,
    to_status   text        NOT NULL,
    changed_at  timestamptz NOT NULL,
    reason      text,
    PRIMARY KEY (order_id, version)
);
