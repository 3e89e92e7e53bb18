"""engines/legacy."""
