"""Plugins the core ships: the RAPL energy meter and the task metrics that decode outputs."""
