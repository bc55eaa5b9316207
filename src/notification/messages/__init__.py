"""Messages: one mailing delivered to one client, and the engine that delivers them."""
