"""keel_fixcodec: the hot loops of keel's FIX codec in C (optional).

keel.venues.fix.codec uses it when it is installed (``scripts/build-native``) and falls back to
its pure-Python code otherwise; see ``_fixcodec.c`` for the three functions.
"""

from keel_fixcodec._fixcodec import encode, frames, maps, parse

__all__ = ["encode", "frames", "maps", "parse"]
#: bumped with any change of the functions' contract; keel checks it before use
ABI = 2
