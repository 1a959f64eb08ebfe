"""Judging outputs: the fp32 reference, task metrics, label-free fidelity, per-layer sensitivity."""
