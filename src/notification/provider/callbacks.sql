-- What a provider's callback is verified with, loaded once by callbacks.py (the API loads it:
-- nothing of the engine or the providers' clients comes with it).

-- name: callback_secret
-- What a callback from provider `name` is checked with: whether any provider is stored (else the
-- settings' provider, `default`, is the one), whether this one is, and its sealed secret.
SELECT EXISTS (SELECT 1 FROM providers) AS any_stored,
       EXISTS (SELECT 1 FROM providers WHERE name = %(name)s) AS found,
       (SELECT callback_secret FROM providers WHERE name = %(name)s) AS sealed
