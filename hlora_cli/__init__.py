"""hlora: multilingual CTC ASR on frozen encoders with shared, routed and hierarchical LoRA."""

__version__ = "0.1.0"
