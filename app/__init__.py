"""Iris: local image chat with LLaVA-style vision-language models."""

__version__ = "0.1.0"
