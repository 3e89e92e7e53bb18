"""engines/actor."""
