"""Test-only stub of ``torchvision.transforms.v2``."""

from torchvision.transforms import *  # noqa: F403
from torchvision.transforms import __getattr__  # noqa: F401
