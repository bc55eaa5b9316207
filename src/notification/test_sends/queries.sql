-- A test send's record, loaded once by services.py (notation: notification.lib.sql).

-- name: record
-- Written before the request: an API that dies meanwhile leaves the attempt on record.
INSERT INTO test_sends (mailing_id, phone, text) VALUES (%(mailing_id)s, %(phone)s, %(text)s) RETURNING id, created_at

-- name: answer
UPDATE test_sends SET outcome = %(outcome)s, status_code = %(status_code)s, error = %(error)s, answered_at = now()
WHERE id = %(id)s
