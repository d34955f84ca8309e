"""`python -m hlora_cli ...` (and `torchrun -m hlora_cli train ...`)."""

from hlora_cli.cli.main import main

main()
