"""Training: joint CTC + LID, resumable to the step, distributed with torchrun."""
