"""The regular US equity session as the costs layer measures it: minutes after 09:30 ET."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: minutes in a regular session (09:30-16:00 ET)
SESSION_MINUTES = 390.0


def minutes_after_open(ts: pd.DatetimeIndex, tz: str = "America/New_York",
                       open_time: str = "09:30") -> np.ndarray:
    """(N,) minutes (fractional) since the local session open of each tz-aware timestamp."""
    local = pd.DatetimeIndex(ts).tz_convert(tz)
    h, m = (int(v) for v in open_time.split(":"))
    return ((local.hour - h) * 60 + (local.minute - m) + local.second / 60
            + local.microsecond / 6e7).to_numpy(dtype=np.float64)
