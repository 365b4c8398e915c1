"""The data plane: base models, generation, LoRA training, captioning and dataset checks.

Importing this package must not import torch; modules that need it import it themselves.
"""
