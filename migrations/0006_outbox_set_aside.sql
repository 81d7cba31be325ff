-- Events the relay can never publish (SNS refuses them for good, e.g. too large) are set
-- aside instead of retried forever at the head of the queue, where they would block every
-- event behind them. A set-aside event keeps its row, its last error and its attempts; an
-- operator republishes it by clearing set_aside_at (see docs/DEPLOY.md).
ALTER TABLE outbox ADD COLUMN set_aside_at timestamptz;

-- The relay's work queue: unpublished events not set aside, oldest first.
DROP INDEX outbox_unpublished_idx;
CREATE INDEX outbox_unpublished_idx ON outbox (occurred_at, event_id)
    WHERE published_at IS NULL AND set_aside_at IS NULL;
-- What an operator (and the relay's metric) looks at.
CREATE INDEX outbox_set_aside_idx ON outbox (set_aside_at)
    WHERE published_at IS NULL AND set_aside_at IS NOT NULL;
