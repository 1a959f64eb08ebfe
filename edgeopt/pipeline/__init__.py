"""The deploy pipeline: request, prepare, search every target, time, pick, finish; and compare."""
