"""The NumPy dtypes of the half-precision vectors (``float16x2``, ``float16x4``): the same bytes,
lane by lane. Here, apart, so that the numba lowering (``_numba``) and the public types
(``types``, which reaches the lowering lazily) both read them without importing each other."""

import numpy as np

LANES = ("x", "y", "z", "w")

np_float16x2 = np.dtype([(lane, np.float16) for lane in LANES[:2]], align=True)
np_float16x4 = np.dtype([(lane, np.float16) for lane in LANES], align=True)

#: Each vector's NumPy dtype by its name.
NP_DTYPES = {"float16x2": np_float16x2, "float16x4": np_float16x4}
