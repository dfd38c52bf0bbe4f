"""Training side of InternVQA: models, checkpoints, datasets, fine-tuning and distillation.

Importing this package does not import torch; submodules that need it import it themselves,
so `vqa-data` (corpus building) runs with the light runtime install.
"""
