"""Testing helpers: closed-form Gaussian ground truth (see ``shared/GROUND_TRUTH.md``)."""

from .gaussian import GaussianFlowField, gaussian_log_prob, gaussian_flow_map

__all__ = ["GaussianFlowField", "gaussian_log_prob", "gaussian_flow_map"]
