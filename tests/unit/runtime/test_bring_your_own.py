"""Teams' own code through the service (fake launcher, no Ray): the run's request carries
the runtime env and the command; runs are named per journal and stored per team; local
paths and packages nobody uploaded are refused; uploaded packages are kept; the log is
read in chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scheduler import train
from scheduler.runtime.config import ServiceConfig
from scheduler.runtime.service import SchedulerService
from scheduler.runtime.views import PackageRejected, SpecRejected
from tests.unit.runtime.test_service import FLEET, Clock, FakeCluster, FakeLauncher, spec

PKG = "gcs://_ray_pkg_0123456789abcdef.zip"


def make(state: Path, storage: str | None = None) -> tuple[SchedulerService, FakeLauncher]:
    cfg = ServiceConfig(state_dir=str(state), preemption=False, storage_path=storage)
    launcher = FakeLauncher()
    svc = SchedulerService(cfg, FLEET, launcher, FakeCluster(), simulated=True, clock=Clock())
    svc.step()
    return svc, launcher


def test_two_journals_and_two_teams_never_share_a_run_directory(tmp_path: Path) -> None:
    shared = str(tmp_path / "nfs")
    old, old_launcher = make(tmp_path / "old", shared)
    new, new_launcher = make(tmp_path / "new", shared)
    a = old.submit({**spec("a"), "team": "perception"})
    b = new.submit({**spec("b"), "team": "planning"})
    c = new.submit({**spec("c"), "team": "perception"})
    assert a.job_id == b.job_id == "job-000001"  # the same number in two journals
    reqs = [
        run.req
        for launcher, job in ((old_launcher, a), (new_launcher, b), (new_launcher, c))
        for run in launcher.of(job.job_id)
    ]
    assert all(r is not None for r in reqs)
    dirs = [f"{train.run_storage(r.info())}/{r.name}" for r in reqs if r is not None]
    assert len(set(dirs)) == 3
    assert dirs[0].startswith(f"{shared}/perception/job-000001-")
    assert dirs[1].startswith(f"{shared}/planning/job-000001-")
    assert dirs[0].rsplit("-", 1)[1] != dirs[1].rsplit("-", 1)[1]  # the journals' ids
    # the id is the journal's: a restart keeps it
    jid = old.journal.instance_id()
    old.close()
    again, _ = make(tmp_path / "old", shared)
    assert again.journal.instance_id() == jid and len(jid) == 10


def test_a_script_job_s_request_has_its_command_and_runtime_env(tmp_path: Path) -> None:
    svc, launcher = make(tmp_path)
    svc.put_package(svc_principal(), PKG, b"PK\x05\x06" + b"\0" * 18)
    job = svc.submit(
        {"name": "s", "team": "perception", "workers": 1, "gpus_per_worker": 2,
         "command": "python train.py --lr 3e-4",
         "runtime_env": {"working_dir": PKG, "pip": ["tabulate"], "env_vars": {"A": "1"}}}
    )  # fmt: skip
    (run,) = launcher.of(job.job_id)
    req = run.req
    assert req is not None and req.kind == "script"
    assert req.command == "python train.py --lr 3e-4" and req.entrypoint is None
    assert req.runtime_env == {"working_dir": PKG, "pip": ["tabulate"], "env_vars": {"A": "1"}}
    assert req.packages == {PKG: str(tmp_path / "packages" / PKG.removeprefix("gcs://"))}
    assert req.submission_id == f"gpuyard-{req.name}-a1"
    view = svc.get_job(job.job_id)
    assert (view.kind, view.ray_job_id) == ("script", req.submission_id)
    assert req.log_path == str(tmp_path / "control" / job.job_id / "log")


def svc_principal() -> Any:
    from scheduler.runtime.service import LOCAL

    return LOCAL


def test_local_paths_and_packages_never_uploaded_are_refused(tmp_path: Path) -> None:
    svc, _ = make(tmp_path)
    with pytest.raises(SpecRejected) as local:
        svc.submit({**spec("x"), "runtime_env": {"working_dir": "./code"}})
    (err,) = local.value.errors
    assert err["loc"] == ("runtime_env", "working_dir") and "upload it first" in err["msg"]
    with pytest.raises(SpecRejected) as missing:
        svc.submit({**spec("y"), "runtime_env": {"working_dir": PKG}})
    assert f"package {PKG} was not uploaded" in missing.value.errors[0]["msg"]
    with pytest.raises(SpecRejected) as bad:
        svc.submit({**spec("z"), "runtime_env": {"env_vars": {"GPUYARD_RUN": "x"}}})
    assert bad.value.errors[0]["loc"] == ("runtime_env", "env_vars", "GPUYARD_RUN")
    assert svc.list_jobs() == []  # nothing of them was accepted


def test_packages_are_kept_by_name_and_bounded(tmp_path: Path) -> None:
    svc, _ = make(tmp_path)
    svc.packages._limit = 100
    assert not svc.package_exists(PKG)
    svc.put_package(svc_principal(), PKG, b"x" * 99)
    assert svc.package_exists(PKG)
    assert (tmp_path / "packages" / PKG.removeprefix("gcs://")).read_bytes() == b"x" * 99
    with pytest.raises(PackageRejected) as big:
        svc.put_package(svc_principal(), "gcs://_ray_pkg_ff.zip", b"x" * 100)
    assert big.value.too_large and "100 B" not in big.value.message
    assert "the limit is 0.00 MiB" in big.value.message
    for name in ("s3://bucket/x.zip", "gcs://../etc/passwd.zip", "gcs://a/b.zip", "gcs://x.tar"):
        with pytest.raises(PackageRejected):
            svc.put_package(svc_principal(), name, b"x")
    svc.step()  # the upload is audited with the next batch
    assert [(a.action, a.target, a.outcome) for a in svc.audit()][-1] == (
        "upload package",
        PKG,
        "ok",
    )


def test_the_log_is_read_in_chunks_and_ends_with_the_job(tmp_path: Path) -> None:
    svc, launcher = make(tmp_path)
    job = svc.submit(spec("j"))
    path = Path(svc.runs.settings.log_path(job.job_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("one\ntwo\nthree\n")
    first = svc.log_chunk(job.job_id, 0, 9)
    assert (first.text, first.next_offset, first.ended) == ("one\ntwo\n", 8, False)
    rest = svc.log_chunk(job.job_id, first.next_offset)
    assert (rest.text, rest.next_offset) == ("three\n", 14)
    assert svc.logs(job.job_id, 2) == "two\nthree\n"
    (run,) = launcher.of(job.job_id)
    run.end("succeeded")
    svc.step()
    end = svc.log_chunk(job.job_id, 14)
    assert (end.text, end.ended) == ("", True)


def test_the_script_job_example_is_a_valid_spec_whose_folder_is_uploaded() -> None:
    from scheduler.runtime.spec import load_spec_file, local_paths

    spec = load_spec_file(Path("examples/script_job/job.yaml"))
    assert spec.kind == "script" and spec.command == "python train.py --epochs 20 --lr 1e-2"
    assert local_paths(spec) == [(("runtime_env", "working_dir"), ".")]


def test_the_script_job_example_trains_without_the_service() -> None:
    import importlib.util

    loader = importlib.util.spec_from_file_location("example_train", "examples/script_job/train.py")
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    module.loop({"epochs": 2, "lr": 3e-3, "sleep": 0.0})  # no run info: one CPU worker's loop


def test_packages_only_ended_jobs_use_are_collected_at_start(tmp_path: Path) -> None:
    import os

    svc, launcher = make(tmp_path)
    live, done, stray = PKG, "gcs://_ray_pkg_00000000000000aa.zip", "gcs://_ray_pkg_00bb.zip"
    for uri in (live, done, stray):
        svc.put_package(svc_principal(), uri, b"PK")
    a = svc.submit({**spec("a"), "runtime_env": {"working_dir": live}})
    b = svc.submit({**spec("b"), "runtime_env": {"py_modules": [done]}})
    (run,) = launcher.of(b.job_id)
    run.end("succeeded")
    svc.step()
    svc.close()
    old = 1_000_000.0
    for uri in (live, done, stray):
        os.utime(tmp_path / "packages" / uri.removeprefix("gcs://"), (old, old))
    again, _ = make(tmp_path)
    assert again.package_exists(live)  # job a may still run
    assert not again.package_exists(done) and not again.package_exists(stray)
    assert again.get_job(a.job_id).state == "RUNNING"
