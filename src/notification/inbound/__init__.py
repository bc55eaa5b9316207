"""Mobile-originated messages: stored, and a stop word puts the sender on the suppression list."""
