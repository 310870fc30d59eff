"""Infrastructure: adapters for the outside world (gateway, mail, broker)."""
