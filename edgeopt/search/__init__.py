"""The per-target search: candidate plans built, checked and timed; its cache and speed screen."""
