"""engines/core."""
