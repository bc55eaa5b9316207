"""Mailings: what to send, to whom, and when."""
