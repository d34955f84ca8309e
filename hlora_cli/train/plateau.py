"""CTC's all-blank plateau, watched in training: a head that emits (almost) nothing but blanks has
not started to recognise its language, and its test CER stays near 100 % however good the others
are. Greedy decoding of the training batches tells, at no extra forward pass, how many tokens each
language's head emits per reference token: about 1 once it has learnt, near 0 on the plateau."""

from __future__ import annotations

from collections import deque

# Below this many emitted tokens per reference token (over the last window) a language is reported:
# a head that has left the plateau emits about one per reference token.
PLATEAU_RATIO = 0.5


class EmissionWatch:
    """Per language, tokens emitted and reference tokens over the last `window` training batches."""

    def __init__(self, languages: list[str], window: int = 50) -> None:
        self.languages = languages
        self.recent: deque[tuple[list[int], list[int], list[int]]] = deque(maxlen=window)

    def add(self, emitted: list[int], langs: list[int], targets: list[int]) -> None:
        """One batch: the tokens greedy decoding emits per utterance (CTCReadout.emitted), their
        language indices and reference lengths."""
        self.recent.append((langs, emitted, targets))

    def state_dict(self) -> list:
        return [list(batch) for batch in self.recent]

    def load_state_dict(self, state: list) -> None:
        """The window a checkpoint saved: a resumed run reports as the uninterrupted one would."""
        self.recent.clear()
        self.recent.extend(tuple(batch) for batch in state)

    def ratios(self) -> dict[str, float]:
        """Emitted per reference token, by language seen in the window."""
        emitted = dict.fromkeys(range(len(self.languages)), 0)
        reference = dict.fromkeys(range(len(self.languages)), 0)
        for langs, out, ref in self.recent:
            for lang, e, r in zip(langs, out, ref, strict=True):
                emitted[lang] += e
                reference[lang] += r
        return {self.languages[i]: round(emitted[i] / reference[i], 3) for i in reference if reference[i]}

    def on_plateau(self) -> dict[str, float]:
        """The languages whose heads still emit fewer than PLATEAU_RATIO tokens per reference token."""
        return {lang: r for lang, r in self.ratios().items() if r < PLATEAU_RATIO}


def plateau_warning(language: str, ratio: float, steps: int) -> str:
    """The line a training prints for a language left on the plateau."""
    return (
        f"warning: {language}: after {steps} steps its CTC head emits {ratio:.2f} tokens per reference token "
        "on the training audio (about 1 once it has learnt): it has not left CTC's all-blank plateau, "
        "so expect fragments or empty texts (a high CER); train longer (--max-steps) or tie the heads "
        "longer (--head-tie-steps)"
    )
