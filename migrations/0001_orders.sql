-- Orders, their lines, and the transactional outbox of events still to be published.

CREATE TABLE orders (
    id             uuid        PRIMARY KEY,
    customer_id    text        NOT NULL,
    customer_name  text        NOT NULL,
    customer_email text        NOT NULL,
    currency       char(3)     NOT NULL,
    total          bigint      NOT NULL CHECK (total >= 0),
    status         text        NOT NULL,
    version        bigint      NOT NULL CHECK (version >= 1),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE INDEX orders_customer_created_idx ON orders (customer_id, created_at DESC);

CREATE TABLE order_lines (
    order_id   uuid    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no    integer NOT NULL,
    sku        text    NOT NULL,
    name       text    NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price bigint  NOT NULL CHECK (unit_price >= 0),
    line_total bigint  NOT NULL CHECK (line_total >= 0),
    PRIMARY KEY (order_id, line_no)
);

-- One row per event, written in the same transaction as the change it records.
CREATE TABLE outbox (
    event_id      uuid        PRIMARY KEY,
    order_id      uuid        NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    event_type    text        NOT NULL,
    order_version bigint      NOT NULL,
    occurred_at   timestamptz NOT NULL,
    payload       jsonb       NOT NULL,
    published_at  timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    UNIQUE (order_id, order_version)
);

-- The relay's work queue: unpublished events, oldest first.
CREATE INDEX outbox_unpublished_idx ON outbox (occurred_at) WHERE published_at IS NULL;
