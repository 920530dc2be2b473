"""GPU architecture names where nvmath-python 1.0 keeps them (``nvmath.device.common_cuda``)."""

from ._api import ComputeCapability, current_device_sm

__all__ = ["ComputeCapability", "current_device_sm"]
