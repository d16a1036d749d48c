"""One row per measured target, printed as a table by `make bench`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BenchRow:
    area: str
    metric: str
    value: float
    target: str
    ok: bool
    detail: str = ""


def print_table(rows: list[BenchRow]) -> None:
    headers = ["area", "metric", "value", "target", "ok", "detail"]
    cells = [[r.area, r.metric, f"{r.value:.3f}", r.target, "yes" if r.ok else "NO", r.detail] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print("\n" + line)
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
