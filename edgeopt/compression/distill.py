"""Knowledge distillation (Hinton et al. 2015): soft targets at a temperature plus the task loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def task_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for integer labels (classification), mean squared error for float labels."""
    import torch.nn.functional as F

    if labels.dtype.is_floating_point:
        return F.mse_loss(outputs.reshape(labels.shape), labels)
    return F.cross_entropy(outputs, labels)


def distill_loss(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, *, temperature: float, alpha: float
) -> torch.Tensor:
    """``alpha * T² * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * task_loss``.

    The ``T²`` factor keeps the soft-target gradients on the scale of the task loss. For float labels
    (regression) the soft term is the MSE to the teacher's outputs."""
    import torch.nn.functional as F

    if labels.dtype.is_floating_point:
        soft = F.mse_loss(student, teacher)
    else:
        t = temperature
        soft = F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                        reduction="batchmean", log_target=True) * (t * t)
    return alpha * soft + (1.0 - alpha) * task_loss(student, labels)
