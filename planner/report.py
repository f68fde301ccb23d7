"""The only planner module that prints, writes files or plots: rich tables, CSVs, PNGs."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from planner.results import Cell, Results, Table

PURCHASE_COLUMNS = ("quarter", "site", "sku", "systems", "gpus")


def _fmt(v: Cell) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != 0 and abs(v) < 10:
            return f"{v:.3g}"
        return f"{v:,.0f}"
    return str(v)


def _num(v: Cell) -> float:
    return float(v) if isinstance(v, int | float) else 0.0


def write_csv(table: Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(table.columns)
        for row in table.rows:
            out.writerow(["" if c is None else c for c in row])


def write_outputs(res: Results, out: Path, extra: Iterable[Table] = ()) -> list[Path]:
    """summary.json, purchases.csv (always, maybe empty), every result table as CSV."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "summary.json"]
    (out / "summary.json").write_text(json.dumps(res.summary(), indent=2) + "\n")
    tables = dict(res.tables)
    tables.setdefault("purchases", Table("purchases", PURCHASE_COLUMNS, ()))
    for t in [*tables.values(), *extra]:
        write_csv(t, out / f"{t.name}.csv")
        written.append(out / f"{t.name}.csv")
    return written


def rich_table(t: Table, title: str | None = None, limit: int = 40) -> RichTable:
    rt = RichTable(title=title or t.name)
    for c in t.columns:
        rt.add_column(c, justify="left" if c in ("quarter", "site", "sku", "workload", "kind", "subject",
                                                  "plan", "scenario", "status", "family", "message", "unit",
                                                  "region", "key") else "right")  # fmt: skip
    for row in t.rows[:limit]:
        rt.add_row(*(_fmt(c) for c in row))
    if len(t.rows) > limit:
        rt.caption = f"{len(t.rows) - limit} more rows in {t.name}.csv"
    return rt


def _by_year(t: Table, keys: tuple[str, ...], values: tuple[str, ...]) -> Table:
    """Sum `values` over the quarters of each year, grouped by `keys`."""
    acc: dict[tuple[Cell, ...], list[float]] = {}
    for rec in t.records():
        k = (str(rec["quarter"])[:4], *(rec[c] for c in keys))
        sums = acc.setdefault(k, [0.0] * len(values))
        for i, c in enumerate(values):
            sums[i] += _num(rec[c])
    rows = tuple(
        (*k, *v) for k, v in sorted(acc.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
    )
    return Table(t.name, ("year", *keys, *values), rows)


def print_results(
    console: Console, res: Results, shadow: Table | None, rules: Table | None
) -> None:
    o = res.outcome
    console.print(f"[bold]{res.scenario}[/]: {o.headline}; model built in {res.build_s:.2f} s")
    if not o.has_solution:
        return
    t = res.tables
    console.print(
        rich_table(
            _by_year(t["purchases"], ("site", "sku"), ("systems", "gpus")), "purchases by year"
        )
    )
    console.print(rich_table(_by_year(t["demand"], ("workload",), ("demand_gpu_h", "served_gpu_h", "unserved_gpu_h")),
                             "H100-equivalent GPU-hours by year"))  # fmt: skip
    costs = _by_year(t["costs"], (), tuple(c for c in t["costs"].columns if c != "quarter"))
    console.print(rich_table(costs, "costs by year (USD; npv_usd discounted)"))
    if shadow is not None:
        keep = tuple(r for r in shadow.rows if r[2] == "all")
        console.print(
            rich_table(Table(shadow.name, shadow.columns, keep), "shadow prices (LP relaxation)")
        )
    if rules is not None:
        console.print(rich_table(rules, "price of rules (re-solved without each)"))


def plot(res: Results, out: Path) -> list[Path]:
    """installed_gpus.png, power.png, costs.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    inst = res.tables["installed"]
    quarters = sorted(
        {str(q) for q in inst.column("quarter")}
        | {str(q) for q in res.tables["costs"].column("quarter")}
    )
    sites = sorted({str(s) for s in inst.column("site")})
    fig, ax = plt.subplots(figsize=(10, 5))
    bottom = [0.0] * len(quarters)
    for s in sites:
        ys = [sum(_num(r["gpus"]) for r in inst.records() if r["site"] == s and r["quarter"] == q)
              for q in quarters]  # fmt: skip
        ax.bar(quarters, ys, bottom=bottom, label=s)
        bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
    ax.set_ylabel("installed GPUs")
    ax.set_title(f"{res.scenario}: installed GPUs by site")
    ax.legend()
    ax.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    paths.append(out / "installed_gpus.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    pw = res.tables["power"].records()
    fig, ax = plt.subplots(figsize=(10, 5))
    for i, s in enumerate(sites or sorted({str(r["site"]) for r in pw})):
        rows = [r for r in pw if r["site"] == s]
        color = f"C{i}"
        ax.plot(
            [str(r["quarter"]) for r in rows],
            [_num(r["facility_mw"]) for r in rows],
            color=color,
            label=f"{s} facility MW",
        )
        ax.plot([str(r["quarter"]) for r in rows], [_num(r["grid_cap_mw"]) for r in rows], color=color, linestyle="--",
                label=f"{s} grid cap")  # fmt: skip
    ax.set_ylabel("MW (IT x PUE)")
    ax.set_title(f"{res.scenario}: power use against grid cap")
    ax.legend(fontsize="small")
    ax.tick_params(axis="x", rotation=90)
    fig.tight_layout()
    paths.append(out / "power.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    costs = _by_year(
        res.tables["costs"],
        (),
        ("capex_usd", "salvage_usd", "energy_usd", "transfer_usd", "penalty_usd"),
    )
    fig, ax = plt.subplots(figsize=(8, 5))
    years = [str(r[0]) for r in costs.rows]
    pos = [0.0] * len(years)
    neg = [0.0] * len(years)
    for j, name in enumerate(costs.columns[1:]):
        ys = [_num(r[j + 1]) / 1e9 for r in costs.rows]
        base = [p if y >= 0 else n for p, n, y in zip(pos, neg, ys, strict=True)]
        ax.bar(years, ys, bottom=base, label=name.removesuffix("_usd"))
        pos = [p + max(y, 0) for p, y in zip(pos, ys, strict=True)]
        neg = [n + min(y, 0) for n, y in zip(neg, ys, strict=True)]
    ax.set_ylabel("USD billions (nominal)")
    ax.set_title(f"{res.scenario}: cost breakdown")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend()
    fig.tight_layout()
    paths.append(out / "costs.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
