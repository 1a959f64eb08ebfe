"""Child processes held to memory and time limits, for work that may crash, hang or grow."""
