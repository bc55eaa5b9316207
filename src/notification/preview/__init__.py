"""Audience preview: who a mailing would reach, when, and what its text costs; creates nothing."""
