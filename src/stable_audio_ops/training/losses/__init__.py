"""training/losses."""
