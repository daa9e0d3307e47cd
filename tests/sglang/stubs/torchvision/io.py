"""Test-only stub of ``torchvision.io``: names exist, calls raise."""

from torchvision import _unavailable


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    return _unavailable
