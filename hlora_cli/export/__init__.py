"""Models leaving the toolkit: a merged transformers CTC model (hf.py) and peft adapters (peft.py)."""
