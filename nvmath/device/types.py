"""Element types of device FFTs, under the names nvmath-python 1.0 gives them.

``FFT.value_type`` is a NumPy scalar type (``np.complex64`` for float32 FFTs), usable as the
``dtype`` of ``cuda.local.array``/``cuda.shared.array`` and on the host alike, so
``fft.value_type == complex64`` holds with the names below.
"""

import numpy as np

__all__ = ["complex64", "complex128", "REAL_NP_TYPES"]

complex64 = np.complex64
complex128 = np.complex128

#: The precisions a device FFT takes (float16: traits only for now).
REAL_NP_TYPES = [np.float16, np.float32, np.float64]
