"""Measuring on the device: the timing harness, memory, energy, device profiles and host facts."""
