"""Accuracy metrics (CC_abs, CC_max, CC_norm, ...)."""

from cortexfm.metrics import cc_max

__all__ = ["cc_max"]
