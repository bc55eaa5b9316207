"""A client's consent to advertising: given, from what source, revoked."""
