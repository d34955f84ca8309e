"""The package's one error: it stands alone (no hlora import), and hlora turns it into its own
one-line error where it reads a language code (hlora_cli/data/langs.py)."""


class LanguageError(ValueError):
    """A language code, or a normalizer's language, that is not valid; the message names it and
    says what would be (one line)."""
