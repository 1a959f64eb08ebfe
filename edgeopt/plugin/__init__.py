"""The plugin surface: hook specs, the manager, the target register, doctor and scaffold."""
