-- Every foreign key on the order path (rounds 5 and 7; docs/perf/bench-run.sh with
-- SQL=docs/perf/fk_drop_six.sql right after larder migrate).
ALTER TABLE "order".orders DROP CONSTRAINT orders_customer_id_fkey, DROP CONSTRAINT orders_merchant_id_fkey;
ALTER TABLE "order".order_lines DROP CONSTRAINT order_lines_order_id_fkey, DROP CONSTRAINT order_lines_product_id_fkey;
ALTER TABLE "order".order_status_history DROP CONSTRAINT order_status_history_order_id_fkey;
ALTER TABLE stock.stock_movements DROP CONSTRAINT stock_movements_ingredient_id_fkey;
