SELECT count(pg_logical_emit_message(true, 'larder.order', gen_random_uuid()::text || chr(10) || s.message)) FROM sample s, generate_series(1,16);
