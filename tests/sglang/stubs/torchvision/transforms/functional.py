"""Test-only stub of ``torchvision.transforms.functional``: names exist, calls raise."""

from torchvision import _unavailable
from torchvision.transforms import InterpolationMode

__all__ = ["InterpolationMode"]


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    return _unavailable
