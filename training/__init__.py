"""kosov training: model loading, SFT with LoRA, run folders, tracking and the `kosov` CLI."""

__version__ = "0.1.0"
