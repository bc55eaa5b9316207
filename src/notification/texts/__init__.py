"""Texts addressed to one person: templates over a client's fields and attributes, checked when a
mailing is written, compiled once per mailing version and rendered per message at send time."""
