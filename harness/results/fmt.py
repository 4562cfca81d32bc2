"""Numbers as people read them: rates, milliseconds, ratios, differences (used by reports and compare)."""

from __future__ import annotations

DASH = "–"


def fmt_rate(v: float | None) -> str:
    if v is None:
        return DASH
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return DASH
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def fmt_num(v: float | None, sig: int = 3) -> str:
    if v is None:
        return DASH
    return f"{v:,.0f}" if abs(v) >= 10**sig else f"{v:.{sig}g}"


def fmt_mib(v: float | None) -> str:
    return DASH if v is None else f"{v:,.0f}"


def fmt_diff(v: float | None) -> str:
    return DASH if v is None else ("0" if v == 0 else f"{v:.1e}")


def fmt_ratio(v: float) -> str:
    return f"{v:.2g}x" if v < 10 else f"{v:,.0f}x"


def fmt_pct(v: float | None) -> str:
    if v is None:
        return DASH
    return f"{v:.0%}" if v == 0 or abs(v) >= 0.01 else f"{v * 100:.2g}%"
