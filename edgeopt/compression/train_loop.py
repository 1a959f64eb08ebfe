"""The one fine-tuning loop every compression step recovers with: seeded, early-stopped, with progress."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeopt.compression.data import Split
from edgeopt.compression.distill import distill_loss, task_loss
from edgeopt.compression.spec import TrainConfig

if TYPE_CHECKING:
    import torch

Report = Callable[[str], None]


@dataclass(frozen=True)
class Epoch:
    """One epoch's figures: mean training loss and the eval metric (accuracy in %, or -MSE)."""

    epoch: int
    loss: float
    metric: float
    lr: float


@dataclass(frozen=True)
class FitResult:
    """The epochs run, the best one (whose weights the model now holds) and why training stopped."""

    history: tuple[Epoch, ...]
    best_epoch: int
    best_metric: float
    stopped: str

    def to_dict(self) -> dict:
        return {
            "epochs_run": len(self.history), "best_epoch": self.best_epoch, "best_metric": self.best_metric,
            "stopped": self.stopped,
            "history": [{"epoch": e.epoch, "loss": e.loss, "metric": e.metric, "lr": e.lr} for e in self.history],
        }


def evaluate(model: torch.nn.Module, split: Split, *, batch_size: int = 256) -> float:
    """Accuracy in percent for integer labels, negative mean squared error for float labels."""
    import torch

    was = model.training
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(split), batch_size):
            outs.append(model(*(t[i : i + batch_size] for t in split.inputs)))
    model.train(was)
    out = torch.cat(outs)
    if split.labels.dtype.is_floating_point:
        return -float(torch.mean((out.reshape(split.labels.shape) - split.labels) ** 2))
    return float((out.argmax(1) == split.labels).float().mean() * 100)


def seed_everything(seed: int) -> None:
    """Seed torch's global generator (weight init in compression steps, dropout)."""
    import torch

    torch.manual_seed(seed)


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True)
    return torch.optim.Adam(params, lr=config.lr)


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    import torch

    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    if config.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, math.ceil(config.epochs / 3)), gamma=0.3)
    return None


def fit(
    model: torch.nn.Module,
    train: Split,
    evaluation: Split,
    *,
    config: TrainConfig,
    teacher: torch.nn.Module | None = None,
    report: Report | None = None,
    progress: bool = False,
    title: str = "fine-tuning",
) -> FitResult:
    """Fine-tune ``model`` in place on ``train``, keeping the weights of the epoch with the best eval metric.

    With ``teacher`` the loss is ``distill_loss`` (soft targets at ``config.temperature`` plus the task loss),
    else the task loss. Stops early after ``config.patience`` epochs without improvement. The epoch before
    training (epoch 0) counts, so fine-tuning never returns a model worse on ``evaluation`` than it got.
    Deterministic for a given ``config.seed``. ``report`` receives one line per epoch; ``progress`` shows a
    Rich progress bar on stderr."""
    import torch

    seed_everything(config.seed)
    order = torch.Generator().manual_seed(config.seed)
    if teacher is not None:
        teacher.eval()
    best_metric = evaluate(model, evaluation)
    best_state = copy.deepcopy(model.state_dict())
    history = [Epoch(0, float("nan"), best_metric, 0.0)]
    best_epoch, stale, stopped = 0, 0, "epochs"
    if config.epochs == 0:
        return FitResult(tuple(history), 0, best_metric, "epochs")
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config)
    bar = _progress(progress)
    task = bar.add_task(title, total=config.epochs) if bar else None
    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            perm = torch.randperm(len(train), generator=order)
            total, count = 0.0, 0
            lr = optimizer.param_groups[0]["lr"]
            for i in range(0, len(train), config.batch_size):
                inputs, labels = train.take(perm[i : i + config.batch_size])
                optimizer.zero_grad(set_to_none=True)
                outputs = model(*inputs)
                if teacher is not None:
                    with torch.no_grad():
                        soft = teacher(*inputs)
                    loss = distill_loss(outputs, soft, labels, temperature=config.temperature, alpha=config.alpha)
                else:
                    loss = task_loss(outputs, labels)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(labels)
                count += len(labels)
            if scheduler is not None:
                scheduler.step()
            metric = evaluate(model, evaluation)
            history.append(Epoch(epoch, total / max(count, 1), metric, lr))
            line = f"{title}: epoch {epoch}/{config.epochs} loss {total / max(count, 1):.4f} eval {metric:.2f}"
            if bar is not None and task is not None:
                bar.update(task, advance=1, description=line)
            if report is not None:
                report(line)
            if metric > best_metric:
                best_metric, best_epoch, stale = metric, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= config.patience:
                    stopped = f"early stop: no better eval metric for {config.patience} epoch(s)"
                    break
    finally:
        if bar is not None:
            bar.stop()
    model.load_state_dict(best_state)
    model.eval()
    return FitResult(tuple(history), best_epoch, best_metric, stopped)


def _progress(enabled: bool):  # noqa: ANN202 - rich.progress.Progress or None
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=Console(stderr=True), transient=True)
    bar.start()
    return bar
