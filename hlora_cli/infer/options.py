"""How `hlora decode` decodes: the modes, the routing flags and every option, checked before any
model is loaded or file read (DecodeOptions); and which model sources go together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hlora_cli.errors import HloraError
from hlora_cli.model.whisper_decoder import LOOP_NGRAM, TOKENS_PER_SECOND
from hlora_cli.values import check_number

MODES = ("single", "two-stage", "oracle")
ROUTING_FLAGS = {"hard": "predicted", "soft": "soft", "top2": "top2"}  # --routing -> the model core's routing


@dataclass(frozen=True)
class DecodeOptions:
    mode: str = "single"
    routing: str = "hard"  # single pass: hard, soft or top2
    decoder: str = "greedy"  # "greedy" or "beam"
    beam_width: int | None = None  # default: 32 (CTC prefix beams), 5 (seq2seq beams)
    lms: dict[str, str] = field(default_factory=dict)  # language -> KenLM (ARPA or binary)
    lm_alpha: float = 0.5
    lm_beta: float = 1.0
    batch_seconds: float = 60.0
    window: float = 25.0  # longer audio is decoded in windows of this many seconds
    overlap: float = 2.0
    lang: str | None = None  # oracle language for inputs without one
    merge: bool = True  # fold LoRA into the weights of a copy of the model (bare-backbone speed)
    compile: bool = False  # torch.compile the encoder pass (CUDA graphs on a GPU): model/compiled.py
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    dtype: str = "auto"  # auto (bf16 where the device computes it natively), fp32, bf16, fp16 (CUDA only)
    num_workers: int | None = None  # processes reading audio ahead; default none on 1-2 cores, else cores / 4 up to 4
    # seq2seq: repetition loops (Whisper on synthetic voices) are cut by a token budget per second
    # of audio and, if asked, transformers' no-repeat n-gram rule; a hypothesis that still loops
    # (whisper's compression-ratio test) is generated again without repeated loop_ngram-grams
    max_tokens_per_second: float = TOKENS_PER_SECOND
    no_repeat_ngram: int = 0
    loop_ngram: int = LOOP_NGRAM

    @property
    def seq2seq_beams(self) -> int:
        """Beams of a seq2seq (Whisper decoder) search: 1 for greedy, else --beam-width (5)."""
        return 1 if self.decoder == "greedy" else self.beam_width or 5

    def __post_init__(self) -> None:
        """Every value checked before any model is loaded or file read."""
        if self.mode not in MODES:
            raise HloraError(f"unknown mode '{self.mode}': choose single, two-stage or oracle")
        if self.routing not in ROUTING_FLAGS:
            raise HloraError(f"unknown routing '{self.routing}': choose {', '.join(ROUTING_FLAGS)}")
        if self.decoder not in ("greedy", "beam"):
            raise HloraError(f"unknown decoder {self.decoder}: choose greedy or beam")
        check_number("--beam-width", self.beam_width, 1, optional=True)
        check_number("--max-tokens-per-second", self.max_tokens_per_second, 0, open_low=True)
        check_number("--no-repeat-ngram", self.no_repeat_ngram, 0)
        check_number("--loop-ngram", self.loop_ngram, 0)
        check_number("--lm-alpha", self.lm_alpha, 0)
        check_number("--lm-beta", self.lm_beta, -1e9)
        check_number("--batch-seconds", self.batch_seconds, 0, open_low=True)
        check_number("--overlap", self.overlap, 0)
        check_number("--window", self.window, 1)
        check_number("--num-workers", self.num_workers, 0, optional=True)
        if self.window <= self.overlap:
            raise HloraError(f"--window {self.window} must be longer than --overlap {self.overlap}")


def check_sources(
    model: Path | None,
    lid_model: Path | None,
    onnx: Path | None,
    whisper: str | None,
    routing: str,
    device: str,
    dtype: str,
    compile_: bool,
) -> None:
    """The models a decode is given, and the settings each can take: one of --model, --onnx or
    --whisper; an ONNX export runs in onnxruntime on the CPU in fp32, hard-routed."""
    if onnx is not None and (
        routing != "hard" or device not in ("auto", "cpu") or dtype not in ("auto", "fp32") or compile_
    ):
        raise HloraError(
            "an ONNX model runs in onnxruntime on the CPU in fp32 (int8 if exported so), routing hard: "
            "drop --routing, --device, --dtype and --compile, or decode the torch model with --model"
        )
    if compile_ and whisper is not None:
        raise HloraError("--compile compiles a --model's encoder pass; --whisper decodes with transformers' generate")
    if whisper is not None and (model is not None or lid_model is not None or onnx is not None):
        raise HloraError("--whisper DIR decodes zero-shot on its own: give it without --model, --onnx or --lid-model")
    if onnx is not None and model is not None:
        raise HloraError("give either --onnx DIR (an exported model) or --model DIR, not both")
    if whisper is None and model is None and onnx is None:
        raise HloraError("give --model DIR, --onnx DIR (an export) or --whisper DIR (a Whisper zero-shot run)")
