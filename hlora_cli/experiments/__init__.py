"""Experiment drivers: runs that train, decode, score and plot through the one trainer and the one
recognizer (the k ablation of the HLoRA paper)."""
