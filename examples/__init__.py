"""Example gpuyard jobs: a small real training loop and job specs that run it."""
