"""Mechanisms that keep anonymous callers from costing the service: signed cookies instead of rows,
and the per-address throttle of failed sign-ins."""
