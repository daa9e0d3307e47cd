"""Test-only torchvision import stub (see tests/sglang/stubs/README.md); not the real package."""

__version__ = "0.0.0+pccguard.test.stub"
PCCGUARD_TEST_STUB = True


def _unavailable(*_args: object, **_kwargs: object) -> None:
    """Every entry point fails loudly: the stub only satisfies imports."""
    raise NotImplementedError("torchvision is a pccguard test-only import stub")


def __getattr__(name: str) -> object:
    if name.startswith("__"):
        raise AttributeError(name)
    return _unavailable
