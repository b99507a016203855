"""Senses: the Raspberry Pi daemon (nose, eye, ear, link)."""

__version__ = "0.1.0"
