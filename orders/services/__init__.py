"""Application services: plain functions that take a session and their side effects."""
