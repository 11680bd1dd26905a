"""The runnable examples of docs/construction.md and the return-attribution example of
docs/risk.md run as written (on the real data in ../shared/data), from the repository root."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _snippets(page: str) -> list[str]:
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.slow
@pytest.mark.parametrize("page", ["construction.md", "risk.md"])
def test_doc_examples_run(page: str, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snippets = _snippets(page)
    assert snippets
    # the docs say "../shared/data" from the repository root: give them that root
    monkeypatch.chdir(REPO)
    if not (REPO.parent / "shared" / "data").exists():
        pytest.skip(f"../shared/data is not beside the repository (data at {shared_data})")
    scope: dict[str, object] = {"__name__": f"docs_{page}"}
    code = "\n".join(snippets) if page == "construction.md" else snippets[-1]
    exec(compile(code, f"docs/{page}", "exec"), scope)  # our own docs
    res: Any = scope["res"]
    if page == "construction.md":
        assert abs(res.weights.sum() - 1.0) < 1e-6 and res.objective_split["risk"] > 0
        bl: Any = scope["bl"]
        assert bl.posterior_returns_["AAPL"] > bl.prior_returns_["AAPL"]   # the view lifted it
    else:
        assert abs(res.by_sector["total"].sum() - res.active_return) < 1e-12
