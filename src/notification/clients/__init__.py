"""The client directory: who can receive mailings."""
