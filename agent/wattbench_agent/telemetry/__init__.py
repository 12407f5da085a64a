"""Ways of reading the GPUs: NVML, nvidia-smi, AMD's tools, and simulated GPUs (open.py picks one)."""
