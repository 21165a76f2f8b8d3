"""Scores, rankings, indicators, publication, the annual evaluation and category policies."""
