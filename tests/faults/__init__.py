"""Fault injection with a recorded history and a checker (see ``checker.py`` for what is
counted, and the README section "Guarantees and how they are tested" for the figures)."""
