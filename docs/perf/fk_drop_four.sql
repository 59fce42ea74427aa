-- The four foreign keys on the order path that point at other tables' hot rows (round 7's variant;
-- run by docs/perf/bench-run.sh with SQL=docs/perf/fk_drop_four.sql right after larder migrate).
ALTER TABLE "order".orders DROP CONSTRAINT orders_customer_id_fkey, DROP CONSTRAINT orders_merchant_id_fkey;
ALTER TABLE "order".order_lines DROP CONSTRAINT order_lines_product_id_fkey;
ALTER TABLE stock.stock_movements DROP CONSTRAINT stock_movements_ingredient_id_fkey;
