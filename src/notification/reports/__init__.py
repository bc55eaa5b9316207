"""The daily statistics report by email: its content, its parts, its schedule and its sending."""
