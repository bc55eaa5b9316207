"""Schedules: a mailing template plus an RFC 5545 recurrence rule in a time zone; each occurrence
becomes a mailing of its own, created once, ahead of its start."""
