"""Delivery statistics grouped by message status."""
