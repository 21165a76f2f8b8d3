"""Ledger files (受理台帐): reading them, mapping their columns, reporting bad rows, writing cases."""
