"""A small, real training job: a driving policy learned from synthetic multi-camera frames.

Entrypoint ``examples.driving_policy:train_loop`` (a Ray Train per-worker function). The
network encodes each camera with one shared CNN, fuses the cameras' features and predicts
steering and acceleration. Data parallel over the gang (DDP through Ray Train); it
checkpoints every epoch, resumes from the last checkpoint, and stops cleanly (checkpoint,
return) when the service asks it to (``scheduler.train.stop_requested``).

The data are synthetic and deterministic (one ``seed``): each sample draws a steering and an
acceleration in [-1, 1] and renders what the cameras would see: a lane marking whose position
in every camera follows the steering, and a lead vehicle in the centre camera whose size
follows the acceleration (close and large: brake). So the targets are a learnable function
of the frames and the loss goes down.

User config (all optional): ``epochs`` (3), ``batch_size`` (32), ``lr`` (0.003), ``samples``
(256), ``cameras`` (3), ``image_size`` (64), ``seed`` (0), ``step_sleep_s`` (0: seconds to
sleep after each step, so that a demo run lasts long enough to preempt). At the defaults an
epoch takes well under a second on one CPU core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from scheduler import train


@dataclass(frozen=True, slots=True)
class Settings:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 3e-3
    samples: int = 256
    cameras: int = 3
    image_size: int = 64
    seed: int = 0
    step_sleep_s: float = 0.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings:
        """The loop's settings; an unknown key is an error (a typo would otherwise be
        ignored and the run would silently use a default)."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(
                f"driving_policy: unknown config keys {unknown}; allowed: {sorted(known)}"
            )
        defaults = cls()
        values: dict[str, Any] = {}
        for name in known:
            default = getattr(defaults, name)
            values[name] = type(default)(config.get(name, default))
        settings = cls(**values)
        if min(settings.epochs, settings.batch_size, settings.samples, settings.cameras) < 1:
            raise ValueError(
                f"driving_policy: epochs, batch_size, samples, cameras must be >= 1: {settings}"
            )
        if settings.image_size < 16:
            raise ValueError(f"driving_policy: image_size must be >= 16, got {settings.image_size}")
        return settings


def synthetic_frames(samples: int, cameras: int, image_size: int, seed: int) -> TensorDataset:
    """``(frames, targets)``: frames ``(samples, cameras, 3, S, S)`` in about [0, 1], targets
    ``(samples, 2)`` = (steering, acceleration), both in [-1, 1]. Deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    steering = torch.rand(samples, generator=g) * 2 - 1
    acceleration = torch.rand(samples, generator=g) * 2 - 1
    axis = torch.linspace(-1, 1, image_size)
    rows, cols = axis.view(1, 1, -1, 1), axis.view(1, 1, 1, -1)  # (1, 1, S, 1), (1, 1, 1, S)

    # each camera looks a little more to the left or right; the lane moves with the steering
    yaw = torch.linspace(-0.5, 0.5, cameras) if cameras > 1 else torch.zeros(1)
    lane_x = (0.6 * steering.view(-1, 1) - yaw.view(1, -1)).view(samples, cameras, 1, 1)
    road = (rows > 0).float()  # lower half of the image
    lane = torch.exp(-(((cols - lane_x) / 0.15) ** 2)) * road  # (N, C, S, S)

    # the lead vehicle, in the centre camera only: the harder the braking, the bigger it is
    half = (0.15 + 0.35 * (1 - acceleration) / 2).view(samples, 1, 1, 1)
    box = torch.sigmoid((half - cols.abs()) * 30) * torch.sigmoid((half - (rows - 0.3).abs()) * 30)
    centre = torch.zeros(1, cameras, 1, 1)
    centre[0, cameras // 2] = 1.0
    vehicle = box * centre  # (N, C, S, S)

    sky = 0.6 * (rows <= 0).float()
    noise = 0.05 * torch.randn(samples, cameras, 3, image_size, image_size, generator=g)
    red = 0.3 * road + lane + vehicle
    green = 0.3 * road + lane
    blue = sky + 0.3 * road
    frames = torch.stack([red, green, blue.expand_as(red)], dim=2) + noise
    targets = torch.stack([steering, acceleration], dim=1)
    return TensorDataset(frames.float(), targets.float())


class CameraEncoder(nn.Module):
    """One camera frame ``(B, 3, S, S)`` to a feature vector ``(B, 256)``; shared by cameras.
    Pools to a 4x4 map rather than to one value so that *where* things are survives."""

    features = 16 * 4 * 4

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


class DrivingPolicy(nn.Module):
    """Frames ``(B, cameras, 3, S, S)`` to ``(B, 2)``: steering and acceleration."""

    def __init__(self, cameras: int) -> None:
        super().__init__()
        self.cameras = cameras
        self.encoder = CameraEncoder()
        self.fuse = nn.Sequential(nn.Linear(cameras * CameraEncoder.features, 128), nn.ReLU())
        self.head = nn.Linear(128, 2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch = frames.shape[0]
        per_camera = self.encoder(frames.flatten(0, 1))  # (B * cameras, F)
        fused = self.fuse(per_camera.reshape(batch, -1))  # camera order is kept: left..right
        out: torch.Tensor = self.head(fused)
        return out


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _mean_over_ranks(total: float, count: int, on: torch.device) -> float:
    """Mean of a per-rank sum over all ranks (the loss every rank reports is the same)."""
    pair = torch.tensor([total, float(count)], dtype=torch.float64)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        pair = pair.to(on if dist.get_backend() == "nccl" else torch.device("cpu"))
        dist.all_reduce(pair)
    summed, n = (float(v) for v in pair.tolist())
    return summed / max(n, 1.0)


def train_loop(config: dict[str, Any]) -> None:
    """The Ray Train per-worker function (``examples.driving_policy:train_loop``)."""
    ctx = train.context(config)
    settings = Settings.from_config(train.user_config(config))
    dev = train.device(ctx)
    torch.manual_seed(settings.seed)

    model: nn.Module = DrivingPolicy(settings.cameras).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    start_epoch = 0
    saved = train.restore(ctx)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])  # after .to(dev): state follows params
        start_epoch = int(saved["epoch"]) + 1
    model = ray.train.torch.prepare_model(model, move_to_device=dev)

    dataset = synthetic_frames(
        settings.samples, settings.cameras, settings.image_size, settings.seed
    )
    shuffle = torch.Generator().manual_seed(settings.seed)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, generator=shuffle)
    # batches are moved by hand: Ray's own move would pick a cuda device even for fake GPUs
    loader = ray.train.torch.prepare_data_loader(loader, move_to_device=False)
    loss_fn = nn.MSELoss()

    def state(completed_epoch: int) -> dict[str, Any]:
        return {
            "model": _unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": completed_epoch,
        }

    for epoch in range(start_epoch, settings.epochs):
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        model.train()
        total, count = 0.0, 0
        for frames, targets in loader:
            if train.stop_requested(ctx):
                # Weights may be part-way through this epoch; the epoch is redone on resume.
                metrics = {
                    "epoch": float(epoch - 1),
                    "stopped": 1.0,
                    "start_epoch": float(start_epoch),
                }
                train.report(ctx, metrics, state=state(epoch - 1))
                return
            frames, targets = frames.to(dev), targets.to(dev)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(frames), targets)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(targets)
            count += len(targets)
            train.mark_first_step(ctx)
            if settings.step_sleep_s > 0:
                time.sleep(settings.step_sleep_s)
        metrics = {
            "epoch": float(epoch),
            "loss": _mean_over_ranks(total, count, dev),
            "stopped": 0.0,
            "start_epoch": float(start_epoch),
        }
        train.report(ctx, metrics, state=state(epoch))
