-- The database micro.py runs in: an outbox as the services have it, one sample envelope (an
-- orders.created of one burger with its headers) and a publication with no tables, whose slot
-- then carries logical messages only.
CREATE TABLE outbox (
    id UUID PRIMARY KEY, subject TEXT NOT NULL, payload JSONB NOT NULL,
    headers JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), published_at TIMESTAMPTZ NULL);
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('bench_outbox', ''); RETURN NULL; END; $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
CREATE TABLE sample (payload text, headers text, message text);
INSERT INTO sample SELECT p, h, 'orders.created' || chr(10) || h || chr(10) || p FROM (SELECT
 '{"id": "0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e9f", "type": "orders.created", "version": 1, "occurred_at": "2026-12-05T05:10:11.123456Z", "correlation_id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "data": {"order_id": "0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e90", "merchant_id": 1, "customer_id": "0193a1f2-7c4e-7d2a-9b1e-3f5a6c7d8e91", "lines": [{"product_id": 1, "quantity": 1, "recipe": [{"ingredient_id": 1, "amount": 150}, {"ingredient_id": 2, "amount": 30}, {"ingredient_id": 3, "amount": 20}]}]}}'::text AS p,
 '{"Event-Type": "orders.created", "Correlation-Id": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'::text AS h) x;
CREATE PUBLICATION larder_outbox;
