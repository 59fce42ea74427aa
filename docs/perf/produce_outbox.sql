INSERT INTO outbox (id, subject, payload, headers) SELECT gen_random_uuid(), 'orders.created', s.payload::jsonb, s.headers::jsonb FROM sample s, generate_series(1,16);
