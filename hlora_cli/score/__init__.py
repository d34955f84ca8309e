"""Scoring: error rates per language, LID accuracy."""
