"""Exceptions raised while loading and running models."""

from __future__ import annotations


class ModelError(Exception):
    """Base of model errors; the message names the file and what is wrong."""


class ModelNotFoundError(ModelError):
    pass


class ModelFormatError(ModelError):
    """The file exists but is not a usable Code Llama GGUF."""


class InferenceError(ModelError):
    """llama.cpp failed while evaluating or generating."""


class BackendUnavailable(InferenceError):
    """A remote server could not serve the request; the message says why in one line."""
