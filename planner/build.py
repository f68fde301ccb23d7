"""Scenario -> MILP, one ``define_*`` function per family of variables or constraints.

Numbers in comments, (1)...(11) and (O), are the equations of planner/README.md. Variables
are created sparsely: a purchase only where the SKU may be delivered to the site's region in
that quarter and the site can host it (11), dispatch only where residency allows it (11) and
some capacity can exist.
"""

from __future__ import annotations

import time

from planner import compat
from planner.demand import tb_per_h100_hour, workload_demand
from planner.inputs import HOURS_PER_QUARTER, QUARTERS_PER_YEAR, Scenario, Site, Sku
from planner.model import GPU_H_UNIT, USD_UNIT, BuildOptions, Model


def can_host(site: Site, sku: Sku) -> bool:
    """Liquid-cooled SKUs need liquid-cooled IT capacity (7); air-cooled ones racks whose
    power density fits one system (6)."""
    if sku.liquid_cooled:
        return site.liquid_it_mw > 0 or (site.blocks_liquid and site.max_blocks > 0)
    air_now = site.existing_racks > 0 and site.existing_it_mw > site.liquid_it_mw
    air_later = not site.blocks_liquid and site.max_blocks > 0 and site.racks_per_block > 0
    return site.rack_kw >= sku.it_kw_per_system and (air_now or air_later)


def systems_per_rack(site: Site, sku: Sku) -> int:
    return int(site.rack_kw // sku.it_kw_per_system)


def deliverable(sc: Scenario, sku: Sku, site: Site, t: int) -> bool:
    """(11) export rules: a purchase ordered in t arrives in t + lead; it must arrive inside
    the horizon, in a quarter where the SKU may be delivered to the site's region."""
    d = t + sku.lead_time_quarters
    return d < sc.horizon.quarters and (sc.relax_export or sku.eligible_in(site.region, d))


def define_purchases(m: Model) -> None:
    """Sku-purchase: buy[k, s, t] in Z+, systems ordered (1)."""
    sc, o = m.scenario, m.options
    for k in sc.skus:
        for s in sc.sites:
            if not can_host(s, k):
                continue
            # A tight upper bound helps branch and bound: all the IT power the site can get.
            ub = int((s.existing_it_mw + s.block_mw * s.max_blocks) * 1000 // k.it_kw_per_system)
            if k.liquid_cooled:
                liquid = s.liquid_it_mw + (s.block_mw * s.max_blocks if s.blocks_liquid else 0.0)
                ub = min(ub, int(liquid * 1000 // k.it_kw_per_system))
            cap = dict(k.supply_cap_systems_per_quarter).get(s.region)
            if cap is not None and not sc.relax_export:
                ub = min(ub, cap)
            for t in range(sc.horizon.quarters):
                if ub <= 0 or not deliverable(sc, k, s, t):
                    continue
                low, up = 0.0, float(ub)
                if t < o.fix_before:
                    low = up = float(min(ub, o.fixed_buys.get((k.name, s.name, t), 0)))
                m.buy[(k.name, s.name, t)] = m.new_var("buy", low, up, True)


def define_installed(m: Model) -> None:
    """Sku-installed (1): inst[k,s,t] - inst[k,s,t-1] = orders delivered in t - orders retiring
    in t + change in existing systems; inst exists where some order can be active."""
    sc = m.scenario
    for k in sc.skus:
        for s in sc.sites:
            prev = None
            for t in range(sc.horizon.quarters):
                if not m.active_orders(k, s, t):
                    prev = None  # nothing ordered can be alive: the existing systems are a constant
                    continue
                v = m.new_var("inst", 0.0, None, False)
                m.inst[(k.name, s.name, t)] = v
                arrive = [(b, -1.0) for b in m.active_orders(k, s, t)]
                if prev is not None:
                    arrive = [
                        (b, c) for b, c in arrive if b not in set(m.active_orders(k, s, t - 1))
                    ]
                    gone = [
                        (b, 1.0)
                        for b in m.active_orders(k, s, t - 1)
                        if b not in set(m.active_orders(k, s, t))
                    ]
                    pairs = [(v, 1.0), (prev, -1.0), *arrive, *gone]
                    rhs = float(m.existing(k, s, t) - m.existing(k, s, t - 1))
                else:
                    pairs, rhs = [(v, 1.0), *arrive], float(m.existing(k, s, t))
                m.add_row("Sku-installed", (k.name, s.name, t), pairs, "==", rhs)
                prev = v


def define_blocks(m: Model) -> None:
    """Site-block: cum[s, t] in Z+, power blocks ordered in quarters 0..t; blocks ordered in t
    are cum[s,t] - cum[s,t-1] >= 0 (Site-block-order) and at most the build rate (8)."""
    sc, o = m.scenario, m.options
    for s in sc.sites:
        if s.max_blocks <= 0 or s.max_blocks_per_quarter <= 0:
            continue
        fixed_total = 0
        for t in range(sc.horizon.quarters - s.block_lead_quarters):
            # In the elastic model the grid cap (5) must be a row that can take slack.
            low, up = 0.0, None if o.elastic else float(s.max_blocks)
            if t < o.fix_before:
                fixed_total += o.fixed_blocks.get((s.name, t), 0)
                low = up = float(fixed_total)
            m.cum[(s.name, t)] = v = m.new_var("cum", low, up, True)
            if t > 0:
                prev = m.cum[(s.name, t - 1)]
                m.add_row("Site-block-order", (s.name, t), [(v, 1.0), (prev, -1.0)], ">=", 0.0)
            rate = m.ordered_terms(s.name, t)
            m.add_row("Site-build-rate", (s.name, t), rate, "<=", float(s.max_blocks_per_quarter))
        if s.opening_cost_usd > 0 and m._last_order(s.name) >= 0:
            fixed = o.fixed_open.get(s.name) if o.fix_before > 0 else None
            lo, hi = (0.0, 1.0) if fixed is None else (float(fixed), float(fixed))
            m.opened[s.name] = m.new_var("open", lo, hi, True)


def define_dispatch(m: Model) -> None:
    """Workload-dispatch: x[w, k, s, t] >= 0 H100-hours; only in allowed regions (11)."""
    sc = m.scenario
    for w in sc.workloads:
        for s in sc.sites:
            if not (sc.relax_residency or s.region in w.allowed_regions):
                continue
            for k in sc.skus:
                for t in range(sc.horizon.quarters):
                    if m.installed_const(k, s, t) > 0 or m.installed_terms(k, s, t):
                        m.x[(w.name, k.name, s.name, t)] = m.new_var("x", 0.0, None, False)


def define_unserved(m: Model) -> None:
    """Workload-unserved: u[w, t] >= 0 H100-hours, only when unserved demand is allowed."""
    if m.scenario.economics.unserved_mode != "penalty":
        return
    for (w, t), e in m.demand.items():
        m.unserved[(w, t)] = m.new_var("u", 0.0, e / GPU_H_UNIT, False)


def define_demand(m: Model) -> None:
    """(2) sum_{k,s} x[w,k,s,t] + u[w,t] >= E[w,t]."""
    by_wt: dict[tuple[str, int], list[tuple[compat.Var, float]]] = {}
    for (w, _k, _s, t), v in m.x.items():
        by_wt.setdefault((w, t), []).append((v, 1.0))
    for (w, t), e in m.demand.items():
        pairs = by_wt.get((w, t), [])
        if (w, t) in m.unserved:
            pairs = [*pairs, (m.unserved[(w, t)], 1.0)]
        m.add_row("Workload-demand", (w, t), pairs, ">=", e / GPU_H_UNIT, GPU_H_UNIT)


def define_capacity(m: Model) -> None:
    """(3) sum_w x[w,k,s,t] <= f_{s,t} * h_k * inst[k,s,t], h_k = eff_k * n_k * H * availability,
    f_{s,t} in (0, 1] the scenario's derate of the site-quarter (1 where none)."""
    sc = m.scenario
    by_kst: dict[tuple[str, str, int], list[tuple[compat.Var, float]]] = {}
    for (_w, kn, sn, t), v in m.x.items():
        by_kst.setdefault((kn, sn, t), []).append((v, 1.0))
    for (kn, sn, t), pairs in by_kst.items():
        sku, site = sc.sku(kn), sc.site(sn)
        h = sku.h100_hours_per_system(HOURS_PER_QUARTER, sc.economics.availability) / GPU_H_UNIT
        h *= sc.derate_factor(sn, t)
        inst = [(v, -h * c) for v, c in m.installed_terms(sku, site, t)]
        const = h * m.installed_const(sku, site, t)
        m.add_row("Sku-capacity", (kn, sn, t), pairs + inst, "<=", const, GPU_H_UNIT)


def _site_rows(m: Model, family: str, s: Site, per_system: dict[str, float], add_per_block: float,
               existing: float) -> None:  # fmt: skip
    """sum_k a_k inst[k,s,t] <= existing + add_per_block * online blocks, for every quarter."""
    sc = m.scenario
    for t in range(sc.horizon.quarters):
        pairs: list[tuple[compat.Var, float]] = []
        const = 0.0
        for k in sc.skus:
            a = per_system.get(k.name, 0.0)
            if a:
                pairs += [(v, a * c) for v, c in m.installed_terms(k, s, t)]
                const += a * m.installed_const(k, s, t)
        if not pairs and const <= existing + 1e-9:
            continue  # nothing can ever use this site's capacity in t: no row needed
        if add_per_block:
            pairs += [(v, -add_per_block * c) for v, c in m.online_blocks(s, t)]
        m.add_row(family, (s.name, t), pairs, "<=", existing - const)


def define_power(m: Model) -> None:
    """(4) sum_k p_k inst[k,s,t] <= P0_s + B_s * online blocks   (MW of IT load)."""
    for s in m.scenario.sites:
        p = {k.name: k.it_kw_per_system / 1000 for k in m.scenario.skus}
        _site_rows(m, "Site-power", s, p, s.block_mw, s.existing_it_mw)


def define_racks(m: Model) -> None:
    """(6) air-cooled systems / systems per rack <= racks now + racks per air block online."""
    for s in m.scenario.sites:
        per = {k.name: 1.0 / systems_per_rack(s, k) for k in m.scenario.skus
               if not k.liquid_cooled and can_host(s, k)}  # fmt: skip
        add = 0.0 if s.blocks_liquid else float(s.racks_per_block)
        _site_rows(m, "Site-racks", s, per, add, float(s.existing_racks))


def define_liquid(m: Model) -> None:
    """(7) liquid-cooled SKUs' IT MW <= liquid-cooled IT capacity now + liquid blocks online."""
    for s in m.scenario.sites:
        p = {k.name: k.it_kw_per_system / 1000 for k in m.scenario.skus if k.liquid_cooled}
        add = s.block_mw if s.blocks_liquid else 0.0
        _site_rows(m, "Site-liquid", s, p, add, s.liquid_it_mw)


def define_grid(m: Model) -> None:
    """(5) cum[s, last] <= Nmax_s * open_s, Nmax_s = floor((grid cap / PUE - P0) / B):
    the grid connection caps the facility draw; with an opening cost (8) no block is built
    unless the site is opened (Nmax is the tightest big-M there is)."""
    for s in m.scenario.sites:
        last = m._last_order(s.name)
        if last < 0:
            continue
        pairs = [(m.cum[(s.name, last)], 1.0)]
        if s.name in m.opened:
            pairs.append((m.opened[s.name], -float(s.max_blocks)))
            m.add_row("Site-grid", (s.name,), pairs, "<=", 0.0)
        else:
            m.add_row("Site-grid", (s.name,), pairs, "<=", float(s.max_blocks))


def define_supply(m: Model) -> None:
    """(9) sum_{s in r} buy[k,s,t] <= Q[k,r] systems per quarter (vendor allocation, licences)."""
    sc = m.scenario
    if sc.relax_export:
        return
    for k in sc.skus:
        for region, cap in k.supply_cap_systems_per_quarter:
            for t in range(sc.horizon.quarters):
                pairs = [(m.buy[(k.name, s.name, t)], 1.0) for s in sc.sites
                         if s.region == region and (k.name, s.name, t) in m.buy]  # fmt: skip
                if len(pairs) > 1:  # one site: already the variable's upper bound
                    m.add_row("Sku-supply", (k.name, region, t), pairs, "<=", float(cap))


def _capex_pairs(m: Model, t: int) -> list[tuple[compat.Var, float]]:
    sc = m.scenario
    pairs = [
        (v, sc.sku(k).price(sc.site(s).region, t)) for (k, s, tt), v in m.buy.items() if tt == t
    ]
    for s in sc.sites:
        pairs += [(v, c * s.block_usd_per_mw * s.block_mw) for v, c in m.ordered_terms(s.name, t)]
    if t == 0:  # opening costs are paid up front (planner/README.md, simplifications)
        pairs += [(v, sc.site(s).opening_cost_usd) for s, v in m.opened.items()]
    return pairs


def define_budget(m: Model) -> None:
    """(10) capex ordered in t (systems, blocks, openings) <= budget per quarter."""
    budget = m.scenario.economics.capex_budget_usd_per_quarter
    if budget is None:
        return
    for t in range(m.quarters):
        pairs = [(v, c / USD_UNIT) for v, c in _capex_pairs(m, t)]
        if pairs:
            m.add_row("Quarter-budget", (t,), pairs, "<=", budget / USD_UNIT, USD_UNIT)


def define_objective(m: Model) -> None:
    """(O) minimise the NPV of capex - salvage + energy + transfer + unserved penalty; in the
    elastic model (E), the sum of slacks relative to each row's right-hand side instead."""
    sc, econ, T = m.scenario, m.scenario.economics, m.quarters
    if m.options.elastic:
        pairs = [(v, 1.0 / max(1.0, abs(m.rows[name].rhs))) for name, v in m.slack.items()]
        compat.set_objective(m.prob, compat.affine(pairs))
        return
    w = m.weight
    end = (1.0 + econ.discount_rate_per_year) ** (-T / QUARTERS_PER_YEAR)
    for t in range(T):
        m.add_cost("capex", t, [(v, c * w[t]) for v, c in _capex_pairs(m, t)])
    if econ.salvage:  # unused life at the horizon's end, valued at straight-line depreciation
        for (kn, sn, t), v in m.buy.items():
            k = sc.sku(kn)
            left = min(
                1.0,
                max(0, t + k.lead_time_quarters + k.lifetime_quarters - T) / k.lifetime_quarters,
            )
            if left > 0:
                m.add_cost("salvage", t, [(v, -end * left * k.price(sc.site(sn).region, t))])
        for sn, t in list(m.cum):
            s, life = sc.site(sn), econ.facility_lifetime_quarters
            left = min(1.0, max(0, t + s.block_lead_quarters + life - T) / life)
            usd = -end * left * s.block_usd_per_mw * s.block_mw
            m.add_cost("salvage", t, [(v, c * usd) for v, c in m.ordered_terms(sn, t)])
    for k in sc.skus:
        for s in sc.sites:
            kwh_usd = s.electricity_usd_per_kwh * s.pue
            idle = econ.idle_power_fraction * k.it_kw_per_system * HOURS_PER_QUARTER * kwh_usd
            for t in range(T):
                m.add_cost(
                    "energy", t, [(v, idle * c * w[t]) for v, c in m.installed_terms(k, s, t)]
                )
                m.add_cost_const("energy", t, idle * m.installed_const(k, s, t) * w[t])
    home = {x.name: x.home_site for x in sc.workloads}
    for (wn, kn, sn, t), v in m.x.items():
        k, s = sc.sku(kn), sc.site(sn)
        busy = (
            (1 - econ.idle_power_fraction)
            * k.it_kw_per_system
            / (k.eff_vs_h100 * k.gpus_per_system)
        )
        # x is in GPU_H_UNIT H100-hours: costs per H100-hour are scaled up accordingly.
        m.add_cost("energy", t, [(v, busy * s.electricity_usd_per_kwh * s.pue * w[t] * GPU_H_UNIT)])
        if sn != home[wn]:
            m.add_cost(
                "transfer",
                t,
                [(v, econ.transfer_usd_per_tb * m.tb_per_h100h[(wn, t)] * w[t] * GPU_H_UNIT)],
            )
    for (_wn, t), v in m.unserved.items():
        m.add_cost("penalty", t, [(v, econ.penalty_usd_per_h100_hour * w[t] * GPU_H_UNIT)])
    pairs = [p for fam in m.cost.values() for ps in fam.values() for p in ps]
    const = sum(c for fam in m.cost_const.values() for c in fam.values())
    if const:  # a fixed variable carries the constant so that solvers report the full NPV
        pairs.append((m.new_var("const", 1.0, 1.0, False), const))
    compat.set_objective(m.prob, compat.affine(pairs))


def build(sc: Scenario, options: BuildOptions | None = None) -> Model:
    started = time.perf_counter()
    o = options or BuildOptions()
    r = sc.economics.discount_rate_per_year
    m = Model(
        scenario=sc,
        options=o,
        prob=compat.new_problem(sc.name.replace(" ", "_") or "plan"),
        demand={(w.name, t): e for w in sc.workloads
                for t, e in enumerate(workload_demand(w, sc.horizon, sc.growth_case))},
        tb_per_h100h={(w.name, t): v for w in sc.workloads
                      for t, v in enumerate(tb_per_h100_hour(w, sc.horizon, sc.growth_case))},
        weight=tuple((1.0 + r) ** (-t / QUARTERS_PER_YEAR) for t in range(sc.horizon.quarters)),
    )  # fmt: skip
    for define in (define_purchases, define_installed, define_blocks, define_dispatch, define_unserved, define_demand,
                   define_capacity, define_power, define_grid, define_racks, define_liquid,
                   define_supply, define_budget, define_objective):  # fmt: skip
        define(m)
    m.build_s = time.perf_counter() - started
    return m
