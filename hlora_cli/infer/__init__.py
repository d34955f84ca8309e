"""Inference: CTC decoding and batched runs of the model core in the three routing modes."""
