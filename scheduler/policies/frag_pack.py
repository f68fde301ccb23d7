"""``frag_pack``: our packing policy. FGD for GPU-sharing pods; for whole-GPU pods, FGD's
fragmentation with the typical shapes weighted by the GPUs they ask for, scored without FGD's
saturating sigmoid and with a best-fit tiebreak; for every unpinned pod, a charge for GPU
models that pinned work needs.

Why, change by change (each answers a way FGD, ``fgd``, loses to a simpler policy):

1. **Whole-GPU pods: shapes weighted by GPUs, not pods.** FGD's fragmentation of a node is
   ``F(n) = sum_t p_t * (idle milli-GPU of n that shape t could not use)``, ``p_t`` the share of
   *pods* of shape ``t``. When few 8-GPU pods carry much of the GPU demand, the 8-GPU shape's
   ``p_t`` is tiny, so FGD breaks a free 8-GPU node for a one-GPU pod and later fails the 8-GPU
   pods that ``best_fit`` or ``dot_product`` place. For whole-GPU pods we use ``w_t ∝ p_t *
   gpus_t`` (a sharing shape counts the one GPU it sits on; CPU-only shapes drop out, they
   shift every node's gain equally). Breaking a free node of ``k`` GPUs then costs about
   ``(GPU share of the shapes needing k GPUs or more) * idle milli``: a whole-node reserve as
   strong as the demand for whole nodes, and none when there is none.
2. **Whole-GPU pods: continuous gain plus best fit.** FGD scores ``trunc(100 *
   sigmoid(gain / 1000))``; below about -3000 milli every node scores 0, so once every choice
   hurts (big pods late in a run) FGD picks a random node. We score the gain in milli-GPU,
   minus ``200 * slack`` (best_fit's slack after placing, ``0.5 * free CPU / 128 cores + 0.5 *
   free GPU / 8``): among nodes whose fragmentation changes alike, the tightest. Measured on
   the 26 named families (3 seeds): demand weights alone 16 of 26 no worse than best-of-six,
   with the tiebreak 19; the continuous gain *without* the tiebreak is much worse on Alibaba's
   default trace (6.75 % vs FGD's 4.73 %): the sigmoid's ties, settled by the fixed node
   rank, pack; the best-fit tiebreak packs too (4.79 %).
3. **Sharing pods: FGD unchanged** (count weights, sigmoid score, FGD's GPU choice). On the
   Alibaba traces, where 40-100 % of GPU pods share a GPU, FGD's choice was the best of the
   six every time, and scoring sharing pods as in (1)-(2) cost 0.3-0.5 points on
   gpushare40..100; keeping FGD for them removed that loss (gpushare100: 13.74 -> 13.4).
   Scores are compared only among nodes for one request, so the two scorings never mix.
4. **Model scarcity charge** (the earlier ``frag_pack``): an unpinned pod pays ``weight(m)``
   milli of fragmentation per milli-GPU it takes on model ``m``,

       weight(m) = (pinned demand for m / all GPU demand) / (GPUs of m / all GPUs)

   from the (count-weighted) typical shapes, so unpinned pods leave the models pinned pods
   need (gpuspec33: 7 % vs FGD's 12 %). No pinned shapes: no charge.

Inside a node, a sharing worker takes FGD's GPU and a whole-GPU worker the lowest-indexed
free GPUs. The policy is ``cacheable`` (a node's score depends only on that node's state and
the request) and costs one more fragmentation model than FGD. Typical shapes come from the
workload (``PolicyContext.typical``: the whole trace, as FGD's protocol gives them); nothing
is learnt online, because an online estimate would change every node's score at once and
defeat the per-node score cache that keeps placement fast at 100,000 GPUs.

Results (``python -m simulations.mixes_experiment``; FGD protocol, unallocated GPU % at
arrived 100 %, median over seeds 42-44; "no worse" = within 0.05 points of the best of the
six FGD-paper policies run on the same workload and seeds):

* Alibaba, 24 pod lists: no worse on 20 (strictly 19). Default trace 4.54 % (3 seeds) and
  4.62 % over seeds 42-51, against FGD's 4.75 % here and 4.77 % published. gpuspec33 5.97 vs
  12.03 (fgd), cpu250 5.31 vs 7.21, cpu235 4.77 vs 5.97. Behind fgd on multigpu30/40/50
  (+0.42, +0.13, +0.25) and gpushare80 (+0.08).
* 26 named families (``simulations.synthetic.families``, tuned on): no worse on 20 (strictly
  18), no worse than fgd on 25. pinned_heavy 6.16 vs 7.74 (best_fit), cpu_only_heavy 3.45 vs
  4.97, cpu_bound 18.18 vs 19.42, gang_heavy 6.10 vs 6.88 (fgd), hard_case 3.15 vs 3.33.
* 24 drawn mixes (``drawn_families(1, 12)``, ``drawn_families(2, 12)``, never tuned on): no
  worse on only 7; no worse than fgd on 18; median gap to the best 0.64 / 1.43 points.

Where it still loses: mixes where ``gpu_clustering``, ``dot_product`` or ``best_fit`` win by
keeping pod classes apart or packing harder (``sharing_heavy`` +2.86: pinned one-GPU pods fail
once their model is used up, a cluster-wide exhaustion no per-node score sees; ``odd_gangs``
+1.25; ``large_fleet`` +0.93; drawn2_06 +5.08, a fleet of 8- and 1-GPU nodes with 6-GPU pods
where ``dot_product`` wins), and the Alibaba multi-GPU traces above.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from scheduler.core.model import MILLI_PER_GPU, WorkerRequest
from scheduler.core.placement.fleet import IntArray
from scheduler.core.placement.fragmentation import FragModel, TypicalShapes, frag_model
from scheduler.core.placement.packing import FloatArray
from scheduler.core.policy import FleetView
from scheduler.policies.base import PolicyContext, gpu_left
from scheduler.policies.fgd import FgdPacking

TIEBREAK_MILLI = 200.0  # milli-GPU of fragmentation per unit of best-fit slack


def demand_weighted(typical: TypicalShapes) -> TypicalShapes:
    """The GPU shapes of ``typical`` reweighted by the GPUs they ask for: ``w_t ∝ p_t *
    gpus_t`` (a sharing pod counts as the one GPU it sits on); CPU-only shapes are dropped.
    Unchanged if it has no GPU shape."""
    keep = [
        (s, p * s.gpus)
        for s, p in zip(typical.shapes, typical.weights, strict=True)
        if s.gpus > 0 and s.gpu_milli > 0
    ]
    total = sum(w for _, w in keep)
    if total <= 0:
        return typical
    return TypicalShapes(tuple(s for s, _ in keep), tuple(w / total for _, w in keep))


class FragPackPacking(FgdPacking):
    name: ClassVar[str] = "frag_pack"

    def __init__(self, ctx: PolicyContext) -> None:
        super().__init__(ctx)  # self.typical: FGD's count weights (sharing pods, scarcity)
        self.gpu_typical: TypicalShapes = demand_weighted(self.typical)  # whole-GPU pods
        self.cmax = float(ctx.cpu_norm_milli)
        self.gmax = float(ctx.gpu_norm_milli)
        self._gpu_model: FragModel | None = None
        self._weights: tuple[FleetView, FloatArray] | None = None

    def gpu_model(self, fleet: FleetView) -> FragModel:
        """The fragmentation model under GPU-weighted shapes (whole-GPU pods)."""
        if self._gpu_model is None or self._gpu_model.fleet is not fleet:
            self._gpu_model = frag_model(fleet, self.gpu_typical)
        return self._gpu_model

    def scarcity(self, fleet: FleetView) -> FloatArray:
        """``weight(m)`` per model id of the fleet (see the module docstring)."""
        if self._weights is not None and self._weights[0] is fleet:
            return self._weights[1]
        n = len(fleet.model_names)
        exists = fleet.gpu_exists
        cap = np.array([(fleet.gpu_model[exists] == i).sum() for i in range(n)], dtype=np.float64)
        pinned = np.zeros(n)
        total = 0.0
        for shape, p in zip(self.typical.shapes, self.typical.weights, strict=True):
            demand = p * shape.gpus * shape.gpu_milli
            total += demand
            ids = [fleet.model_id[m] for m in shape.gpu_models if m in fleet.model_id]
            for i in ids:
                pinned[i] += demand / len(ids)
        weights = np.zeros(n)
        if total > 0 and cap.sum() > 0:
            share = cap / cap.sum()
            weights = np.divide(pinned / total, share, out=np.zeros(n), where=share > 0)
        self._weights = (fleet, weights)
        return weights

    def _charge(
        self, fleet: FleetView, req: WorkerRequest, nodes: IntArray, taken: IntArray
    ) -> FloatArray:
        """Scarcity charge (milli-GPU) of taking ``taken`` ([n, G] milli per GPU) on ``nodes``."""
        if req.gpu_models or req.gpus == 0:
            return np.zeros(taken.shape)
        w = self.scarcity(fleet)
        return w[np.maximum(fleet.gpu_model[nodes], 0)] * taken

    def slack(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        """best_fit's slack after placing ``req`` (0 = the node is left full)."""
        out: FloatArray = (
            0.5 * (fleet.cpu_free[nodes] - req.cpu_milli) / self.cmax
            + 0.5 * (gpu_left(fleet, nodes) - req.total_gpu_milli) / self.gmax
        )
        return out

    def node_gpu_scores(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        """``[n, G]`` FGD score of a sharing worker on each GPU, scarcity charge included
        (-inf where it cannot go)."""
        model = self.model(fleet)
        before = model.frag(nodes)
        after = model.frag_after_share(nodes, req.cpu_milli, req.memory_mib, req.gpu_milli)
        charge = self._charge(
            fleet, req, nodes, np.full(fleet.gpu_free[nodes].shape, req.gpu_milli)
        )
        elig = fleet.eligible_gpus(req)[nodes] & (fleet.gpu_free[nodes] >= req.gpu_milli)
        return np.where(elig, self.gain_score(before[:, None] - after - charge), -np.inf)

    def gpu_gain(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        """Whole-GPU (or CPU-only) worker: the charged fragmentation decrease (milli-GPU) under
        GPU-weighted shapes."""
        model = self.gpu_model(fleet)
        before = model.frag(nodes)
        taken = self._whole_gpus(fleet, req, nodes)
        after = model.frag_after_whole(nodes, req.cpu_milli, req.memory_mib, taken)
        charge = self._charge(fleet, req, nodes, taken * MILLI_PER_GPU).sum(axis=1)
        out: FloatArray = before - after - charge
        return out

    def score(self, fleet: FleetView, req: WorkerRequest, nodes: IntArray) -> FloatArray:
        if req.shares_gpu:
            return super().score(fleet, req, nodes)  # FGD's score; records each node's GPU
        out: FloatArray = self.gpu_gain(fleet, req, nodes) - TIEBREAK_MILLI * self.slack(
            fleet, req, nodes
        )
        return out
