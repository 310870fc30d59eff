"""The 202 write path: validate, record durably, then enqueue."""
