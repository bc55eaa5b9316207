"""The external SMS provider: the HTTP client we send through (its fake lives in ``notification.dev``)."""
