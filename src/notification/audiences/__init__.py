"""Audiences: named filters that mailings and schedules reuse; the directory's values (facets) and
the names of operator codes."""
