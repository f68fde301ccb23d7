"""Uploaded code packages (a job's working_dir and py_modules), kept by the service.

The CLI, the SDK and ``ray job submit`` upload a local working directory the way Ray does:
zipped with Ray's own packaging (``.gitignore``/``.rayignore``/``excludes`` honoured),
named by its content hash (``gcs://_ray_pkg_<hash>.zip``) and PUT to
``/api/packages/gcs/<name>``. Ray's own server would only put it in the GCS, where it is
garbage-collected once no job refers to it: a job that waits hours in gpuyard's queue would
find its code gone, and a restart of the Ray cluster loses every package. So the service
keeps each package in ``<state_dir>/packages`` as well, and the runner makes sure it is in
the GCS (uploading it again if needed) and pinned just before each attempt starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from scheduler.runtime.views import PackageRejected

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}\.(zip|whl)$")
PIN_S = 3600  # a temporary reference in the GCS while the attempt's runtime env is set up


def size_limit() -> int:
    """Ray's limit on a package in the GCS (the gRPC message size)."""
    from ray._private.runtime_env.packaging import GCS_STORAGE_MAX_SIZE

    return int(GCS_STORAGE_MAX_SIZE)


def mib(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


def split_uri(uri: str) -> str:
    """The package's file name; refuses what is not ``gcs://<name>.zip|.whl``."""
    protocol, sep, name = uri.partition("://")
    if not sep or protocol != "gcs":
        raise PackageRejected(
            f"package {uri!r}: only gcs:// packages are uploaded to gpuyard (remote "
            "s3://, https://... URIs are given in the spec as they are)"
        )
    if not NAME_PATTERN.match(name):
        raise PackageRejected(
            f"package {uri!r}: the name must be a file name ending in .zip or .whl, as Ray "
            "names its packages (gcs://_ray_pkg_<hash>.zip)"
        )
    return name


class PackageStore:
    """``<root>/<name>``, written atomically; a package is immutable once stored (its name
    is its content's hash)."""

    def __init__(self, root: Path, limit: int | None = None) -> None:
        self.root = root
        self._limit = limit

    @property
    def limit(self) -> int:
        return self._limit if self._limit is not None else size_limit()

    def path(self, uri: str) -> Path:
        return self.root / split_uri(uri)

    def exists(self, uri: str) -> bool:
        try:
            return self.path(uri).is_file()
        except PackageRejected:
            return False

    def check_size(self, uri: str, size: int) -> None:
        if size >= self.limit:
            raise PackageRejected(
                f"package {uri} is {mib(size)}; the limit is {mib(self.limit)} (Ray's GCS "
                "limit): exclude large files with .gitignore, .rayignore or runtime_env "
                "excludes, or give a remote URI (s3://...zip)",
                too_large=True,
            )

    def put(self, uri: str, data: bytes) -> Path:
        target = self.path(uri)
        self.check_size(uri, len(data))
        if not data:
            raise PackageRejected(f"package {uri} is empty")
        self.root.mkdir(parents=True, exist_ok=True)
        if target.exists():
            return target
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        partial.write_bytes(data)
        partial.replace(target)
        return target

    def collect(self, keep: set[str], older_than_s: float, now_s: float) -> list[str]:
        """Delete the packages no job that may still run refers to (``keep``: their
        URIs) and older than ``older_than_s`` (an upload whose job is not submitted yet is
        young); returns the URIs removed."""
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        for path in sorted(self.root.iterdir()):
            uri = f"gcs://{path.name}"
            if not path.is_file() or path.name.startswith(".") or uri in keep:
                continue
            if now_s - path.stat().st_mtime < older_than_s:
                continue
            path.unlink(missing_ok=True)
            removed.append(uri)
        return removed


def ensure_in_gcs(uri: str, path: str | Path) -> None:
    """Put the package in Ray's GCS unless it is there, and pin it for ``PIN_S`` seconds so
    that it is not collected before the attempt's runtime env refers to it (a Ray process)."""
    from ray._private.runtime_env.packaging import (
        package_exists,
        pin_runtime_env_uri,
        upload_package_to_gcs,
    )

    if not package_exists(uri):
        upload_package_to_gcs(uri, Path(path).read_bytes())
    pin_runtime_env_uri(uri, expiration_s=PIN_S)
