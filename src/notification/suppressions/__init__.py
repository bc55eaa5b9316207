"""The suppression list: numbers no mailing reaches, whatever its kind."""
