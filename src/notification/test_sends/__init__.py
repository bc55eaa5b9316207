"""Test sends: one message of a mailing to a given phone, now, outside the statistics."""
