"""Accuracy metrics (CC_abs, CC_max, CC_norm, ...)."""

from cortexfm.evaluate.metrics import cc_max

__all__ = ["cc_max"]
