"""coffea processors that run trained models over event files."""
