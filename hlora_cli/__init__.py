"""hlora: multilingual CTC ASR on frozen encoders with shared, routed and hierarchical LoRA."""

import os

# OpenMP threads that wait at a barrier yield their core instead of spinning (read when torch loads
# its OpenMP runtime, so before any import of torch). Beside another busy process on 2 cores,
# spinning cut training to 0.27 of its quiet throughput, yielding to 0.53, at a 9 % cost alone
# (bench/train_speed.py --contention, BENCHMARKS.md). A user's own setting stays.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
