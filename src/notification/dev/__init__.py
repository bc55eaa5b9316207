"""Development stand-ins: what ``notification dev``, the tests and the benchmarks run in place of
the outside world (an SMS provider, PostgreSQL, a mail server, an OpenID provider). Nothing of the
service itself imports this package."""
