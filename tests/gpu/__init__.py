"""Tests on real NVIDIA GPUs (marker ``gpu``; ``make gpu-check``). Every module skips itself,
with the reason, where no usable GPU is (``gpu_env.gpu_skip_reason``)."""
