"""The dashboard in a real headless Chromium: what the page shows after its JavaScript ran,
and that it follows the store while trading happens.

Needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/install-browser``) and the
``selenium`` package. Without them the test is skipped with a notice, unless
``KEEL_REQUIRE_BROWSER=1`` (CI) makes that a failure. ``KEEL_SCREENSHOT_DIR=DIR`` keeps the
screenshots.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from keel import fmt
from keel.app.sample import sample_book, trade
from keel.app.scrape import BREACH_ACTION
from keel.app.service import BackgroundServer, create_app
from keel.clock import SimulatedClock
from keel.data.synthetic import synthetic_market
from keel.portfolio.ledger import Ledger
from keel.risk.limits import RiskLimits
from keel.store.audit import AuditLog
from keel.store.db import Store
from keel.store.orders_repo import OrdersRepo
from keel.types import Side

pytestmark = pytest.mark.service

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1700"]


def _browser_or_skip() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
        have_selenium = True
    except ImportError:
        have_selenium = False
    if chromium and driver and have_selenium:
        return chromium, driver
    missing = [n for n, ok in (("chromium", chromium), ("chromedriver", driver),
                               ("selenium (pip)", have_selenium)) if not ok]
    hints = (["run scripts/install-browser"] if not (chromium and driver) else []) + (
        ["pip install selenium"] if not have_selenium else [])
    msg = f"dashboard browser test needs {', '.join(missing)}: {' and '.join(hints)}"
    if os.environ.get("KEEL_REQUIRE_BROWSER") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture
def browser(tmp_path):
    chromium, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _shot(drv, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    drv.save_screenshot(str(out))
    keep = os.environ.get("KEEL_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(keep) / name)
    return out


def test_dashboard_shows_the_book_and_follows_new_fills(browser, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    market = synthetic_market(30, 300, seed=11)
    store = Store.from_url(f"sqlite:///{tmp_path / 'keel.db'}")
    store.create_all()
    clock = SimulatedClock(market.now.to_pydatetime())
    syms = [str(s) for s in market.symbols[:6]]
    sample_book(store, clock, market, syms)
    audit = AuditLog(store)
    for code in ("MAX_POSITION", "MAX_POSITION", "SECTOR_CAP"):
        audit.append("risk", BREACH_ACTION, "limit", code, {"code": code}, clock.now())
    app = create_app(store, market=lambda: market, clock=clock, poll_seconds=0.5,
                     limits=RiskLimits(max_position=0.03, max_sector_weight=0.25))
    wait = WebDriverWait(browser, 45, poll_frequency=0.2)

    # Read the page with one script call each: the dashboard replaces its tables on every
    # poll, so element handles kept across two calls can go stale.
    def text(css: str) -> str:
        return browser.execute_script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            css) or ""

    def texts(css: str) -> list[str]:
        return browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText);", css)

    def row(table: str, symbol: str) -> list[str]:
        return texts(f'#{table} tbody tr[data-symbol="{symbol}"] td')

    try:
        with BackgroundServer(app) as srv:
            browser.get(srv.url + "/")
            assert browser.title == "keel dashboard"
            # the JS fetched and rendered every panel once (it counts its refreshes)
            wait.until(lambda d: int(d.execute_script(
                "return document.body.dataset.refreshes || 0")) >= 1)
            assert row("positions", syms[0])[2] == "2,000"
            assert text("#n-positions") == "6"
            assert text("#n-fills") == "12"
            assert text("#store-status") == "store ok"
            assert text("#kill-switch") == "kill switch off"
            _charts_show_the_store(browser, wait, store, clock, srv.url)
            wait.until(lambda d: text("#risk-summary").startswith("Total"))
            assert "Factor" in text("#risk-summary") and "Specific" in text("#risk-summary")
            # the book was bought on the market's last session: no history to attribute yet
            wait.until(lambda d: "nothing" in text("#attribution-summary"))
            assert text("#vol").endswith("%") and float(text("#vol")[:-1]) > 0
            assert texts("#risk-chart svg text")
            breaches = texts("#breaches tbody tr.breach")
            assert any(b.startswith("MAX_POSITION") for b in breaches)
            tca = row("tca", syms[0])
            assert tca and tca[1] == "1"  # one executed order in that symbol
            assert len(texts("#orders tbody tr[data-order]")) == 6
            # the cost form: a proposed trade priced by the service, and a refusal's reason
            browser.find_element("id", "cost-symbol").send_keys(syms[1])
            browser.find_element("id", "cost-qty").send_keys("10000")
            browser.find_element("id", "cost-go").click()
            wait.until(lambda d: "bps" in text("#cost-result"))
            assert text("#cost-result").startswith(f"BUY 10,000 {syms[1]} at ")
            assert [r.split("\t")[0] for r in texts("#cost-table tbody tr")] == [
                "spread", "impact", "commission"]
            shown = float(browser.execute_script(
                "return document.getElementById('cost-result').dataset.costBps"))
            want = httpx.post(srv.url + "/api/cost-estimate", json={
                "symbol": syms[1], "qty": 10000, "side": "BUY"}).json()["cost_bps"]
            assert shown == pytest.approx(want)
            _shot(browser, tmp_path, "dashboard.png")
            browser.find_element("id", "cost-symbol").clear()
            browser.find_element("id", "cost-symbol").send_keys("NOPE")
            browser.find_element("id", "cost-go").click()
            wait.until(lambda d: text("#cost-result").startswith("refused (422)"))
            assert "unknown symbol" in text("#cost-result")
            equity_before = text("#equity")

            # trading happens: the store gets new orders and fills; the page follows
            trade(store, clock, market, "live-1", syms[0], Side.BUY, 3000)
            trade(store, clock, market, "live-2", str(market.symbols[20]), Side.BUY, 1500)
            wait.until(lambda d: text("#n-fills") == "16")
            wait.until(lambda d: text("#n-positions") == "7")  # both trades in the ledger
            # a poll may have read the ledger between two slices: wait for the next one
            wait.until(lambda d: row("positions", str(market.symbols[20]))[2:3] == ["1,500"])
            assert row("positions", syms[0])[2] == "5,000"
            assert text("#equity") != equity_before  # commissions and slippage moved it
            assert row("tca", syms[0])[1] == "2"
            # the equity curve follows: its last point is the ledger's equity after the trades
            eq = float(Ledger.open(store, clock=clock).state.equity)
            wait.until(lambda d: _trace(d, "equity-chart", 0)["y"][-1] == pytest.approx(eq))
            _shot(browser, tmp_path, "dashboard-after-fills.png")
    finally:
        store.dispose()


def _trace(drv, chart: str, i: int) -> dict:
    """The ``i``-th trace Plotly drew in ``#chart`` (x, y and name), as the page holds it."""
    return drv.execute_script(
        "const g = document.getElementById(arguments[0]);"
        "if (!g || !g.data || !g.data[arguments[1]]) return {x: [], y: [], name: null};"
        "const t = g.data[arguments[1]];"
        "return {x: Array.from(t.x || []), y: Array.from(t.y || []), name: t.name};",
        chart, i)


def _charts_show_the_store(drv, wait, store, clock, url) -> None:
    """What the charts over time show equals the store, recomputed here from its rows."""
    state = Ledger.open(store, clock=clock).state
    wait.until(lambda d: _trace(d, "equity-chart", 0)["y"])
    eq = _trace(drv, "equity-chart", 0)
    # the equity curve starts at the deposit and ends at the ledger's equity
    assert eq["y"][0] == pytest.approx(10_000_000)
    assert eq["y"][-1] == pytest.approx(float(state.equity))
    assert drv.execute_script("return document.getElementById('equity').innerText") == (
        fmt.money(state.equity))  # the KPI is written as keel.fmt writes money
    pnl, dd = _trace(drv, "pnl-chart", 0), _trace(drv, "pnl-chart", 1)
    assert pnl["y"][-1] == pytest.approx(float(state.equity - state.net_deposits))
    assert all(v <= 1e-12 for v in dd["y"]) and min(dd["y"]) < 0  # costs: below the start

    # turnover and realised cost per day, recomputed from fills and their parents' arrival
    fills = OrdersRepo(store).fills()
    parents = {p.order.client_order_id: p for p in OrdersRepo(store).parents()}
    notional = sum(float(f.qty * f.price) for f, _ in fills)
    cost = sum(float(f.side.sign * (f.price - parents[pid].arrival_price) * f.qty
                     + f.commission) for f, pid in fills)
    turnover = _trace(drv, "trading-chart", 0)
    assert len(turnover["x"]) == 1  # the sample book trades on one day
    assert turnover["y"][0] == pytest.approx(100 * notional / float(state.equity))
    realised = _trace(drv, "slippage-chart", 0)
    assert realised["y"][0] == pytest.approx(1e4 * cost / notional)
    predicted = _trace(drv, "slippage-chart", 1)
    assert predicted["y"][0] > 0
    # breaches per day and limit, stacked
    shown = {drv.execute_script(
        "return document.getElementById('breach-chart').data[arguments[0]].name", i):
        _trace(drv, "breach-chart", i)["y"] for i in range(2)}
    assert shown == {"MAX_POSITION": [2], "SECTOR_CAP": [1]}

    # offline: every script and resource came from the service itself (no CDN)
    sources = drv.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(s.endswith("/static/plotly.min.js") for s in sources)
    assert all(s.startswith(url) for s in sources), sources
    # tables and charts fit the 1400 px window: no section scrolls sideways
    wide = drv.execute_script(
        "return [...document.querySelectorAll('main > section')]"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.id)")
    assert wide == []
    assert drv.execute_script("return document.documentElement.scrollWidth") <= 1400
