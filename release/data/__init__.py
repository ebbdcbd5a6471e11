"""data: restore drills verified against a real database."""
