"""The replay loop every queue simulation shares: a virtual clock feeds jobs' arrivals and
finishes to the scheduling core and records what happened to each job.

The core decides everything; this driver only turns ``Launch`` actions into finish events a
run time later (what is left of the job's work after its last checkpoint), and sends a
``Tick`` at the time the core asks to be woken (``ClusterState.next_wake_s``: a running job
demoted under ``las``) when no other event falls then. With ``until_s`` the replay stops at
that instant: jobs still pending or running then are left as they are (a window of a longer
stream, as the plan simulation replays).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.core.actions import Launch, Preempt, Reject
from scheduler.core.events import Event, JobFinished, JobSubmitted, Tick
from scheduler.core.model import MILLI_PER_GPU, Job
from scheduler.core.state import ClusterState


@dataclass(slots=True)
class JobTrack:
    """What happened to one job: its runs as (start, end) intervals (end = the stop time of a
    preempted run, or ``until_s`` for a run cut by the window), its first start, its end."""

    job_id: str
    submit_s: float
    gpus: float  # GPUs it holds while running (milli-GPU / 1000)
    work_s: float  # the run time it asks for (on the GPUs it is pinned to)
    runs: list[tuple[float, float]]
    start_s: float = math.nan  # first start; nan: never started
    end_s: float = math.nan  # finish; nan: did not finish (in the window)
    preemptions: int = 0
    rejected: bool = False

    @property
    def ran_s(self) -> float:
        return sum(b - a for a, b in self.runs)

    def held_gpu_s(self, t0: float, t1: float) -> float:
        """GPU-seconds it held inside ``[t0, t1]``."""
        return self.gpus * sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in self.runs)


@dataclass(frozen=True, slots=True)
class Replay:
    tracks: tuple[JobTrack, ...]  # in the order the jobs were given
    state: ClusterState  # the core at the end (reservations, lost work)
    rejected: int


def replay_jobs(
    state: ClusterState,
    jobs: Sequence[Job],
    durations_s: Sequence[float],
    until_s: float | None = None,
) -> Replay:
    """Replay ``jobs`` (submitted at their ``submitted_at_s``; ``durations_s[i]`` the work
    job ``i`` asks for) through ``state``."""
    # event heap: (time, kind, seq, job index, run); kind 0 = finish, 1 = arrival, 2 = wake-up,
    # so finishes at the same instant free their GPUs before arrivals are considered; a finish
    # whose run number is stale belongs to a run that was preempted and is dropped, a wake-up
    # the core no longer asks for (or at an instant with other events) too
    heap: list[tuple[float, int, int, int, int]] = [
        (j.submitted_at_s, 1, i, i, 0) for i, j in enumerate(jobs)
    ]
    heapq.heapify(heap)
    index = {j.job_id: i for i, j in enumerate(jobs)}
    tracks = tuple(
        JobTrack(j.job_id, j.submitted_at_s, j.total_gpu_milli / MILLI_PER_GPU, d, [])
        for j, d in zip(jobs, durations_s, strict=True)
    )
    remaining = list(durations_s)
    run_no = [0] * len(jobs)
    began: dict[int, float] = {}
    rejected = 0
    seq = len(jobs)
    wakes: set[float] = set()  # wake-up times in the heap
    limit = math.inf if until_s is None else until_s
    while heap and heap[0][0] <= limit:
        now = heap[0][0]
        events: list[Event] = []
        woken = False
        while heap and heap[0][0] == now:
            _, kind, _, i, run = heapq.heappop(heap)
            if kind == 1:
                events.append(JobSubmitted(now, jobs[i]))
            elif kind == 2:
                wakes.discard(now)
                woken = state.next_wake_s() == now
            elif run == run_no[i]:
                events.append(JobFinished(now, jobs[i].job_id))
                tracks[i].runs.append((began.pop(i), now))
                tracks[i].end_s = now
        if not events and woken:
            events.append(Tick(now, "wake-up"))
        if not events:
            continue
        for act in state.handle(*events):
            if isinstance(act, Launch):
                i = index[act.job_id]
                track = tracks[i]
                if math.isnan(track.start_s):
                    track.start_s = now
                began[i] = now
                run_no[i] += 1
                heapq.heappush(heap, (now + remaining[i], 0, seq, i, run_no[i]))
                seq += 1
            elif isinstance(act, Preempt):
                i = index[act.job_id]
                remaining[i] = durations_s[i] - act.resume_from_s
                run_no[i] += 1  # the pending finish is now stale
                tracks[i].runs.append((began.pop(i), now))
                tracks[i].preemptions += 1
            elif isinstance(act, Reject):
                rejected += 1
                tracks[index[act.job_id]].rejected = True
        wake = state.next_wake_s()
        if not math.isinf(wake) and wake not in wakes:
            wakes.add(wake)
            heapq.heappush(heap, (wake, 2, seq, -1, 0))
            seq += 1
    if until_s is not None:
        for i, t0 in began.items():  # runs the window cut
            tracks[i].runs.append((t0, until_s))
    return Replay(tracks, state, rejected)
