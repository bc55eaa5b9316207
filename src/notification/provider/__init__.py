"""The external SMS provider: the HTTP client we send through and a fake with the same contract."""
