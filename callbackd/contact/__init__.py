"""Reaching applicants: the attempt state machine, conversations, answers, dispatch, result files and
rectifications (整改)."""
