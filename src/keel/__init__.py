"""keel: signals to a risk-controlled portfolio, and that portfolio to orders at the lowest cost."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("keel")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
