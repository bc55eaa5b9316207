"""Plumbing every domain shares and none owns."""
