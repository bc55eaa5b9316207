-- Inbound messages' SQL, loaded once by service.py (notation: notification.lib.sql).

-- name: store
-- A provider handing the same message over again (its own id repeated) stores nothing: no row back.
INSERT INTO inbound_messages (provider, phone, text, received_at, provider_message_id, stop_word)
VALUES (%(provider)s, %(phone)s, %(text)s, %(received_at)s, %(provider_message_id)s, %(stop_word)s)
ON CONFLICT (provider, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING
RETURNING id
