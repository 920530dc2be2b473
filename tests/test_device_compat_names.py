"""Names code written for nvmath-python 1.0 imports from ``nvmath.device`` besides the FFT itself
(its examples' shared helpers among them): they load on a machine without a GPU."""

import pytest


def test_common_cuda_has_compute_capability_and_current_device_sm():
    from nvmath.device import ComputeCapability, current_device_sm
    from nvmath.device.common_cuda import ComputeCapability as cc_class, current_device_sm as cc_function

    assert cc_class is ComputeCapability and cc_function is current_device_sm
    assert ComputeCapability(9, 0).integer == 90 and ComputeCapability(12, 1).integer == 121


def test_current_device_sm_names_the_fix_without_a_gpu(monkeypatch):
    import fftfuse_compiler.toolchain as toolchain

    from nvmath.device import current_device_sm

    monkeypatch.setattr(toolchain, "current_device_arch", lambda: None)
    with pytest.raises(ValueError, match="pass sm= explicitly"):
        current_device_sm()


def test_current_device_sm_clamps_to_the_newest_architecture_cufftdx_knows(monkeypatch):
    import fftfuse_compiler.toolchain as toolchain

    from nvmath.device import FFT, current_device_sm
    from nvmath.device._descriptor import MAX_ARCH

    monkeypatch.setattr(toolchain, "current_device_arch", lambda: 90)
    sm = current_device_sm()
    assert (sm.major, sm.minor) == (9, 0)
    assert FFT(64, "float32", "c2c", "Block", sm=sm, direction="forward").sm == sm  # takes its own result back
    monkeypatch.setattr(toolchain, "current_device_arch", lambda: MAX_ARCH + 10)
    assert current_device_sm().integer == MAX_ARCH


def test_cusolverdx_names_load_and_say_what_is_missing_when_used():
    from nvmath.device.cusolverdx import Solver, _OrthogonalFactorizerProperties, _SolverProperties

    annotation = Solver | _SolverProperties | _OrthogonalFactorizerProperties  # evaluated at import by such code
    assert not isinstance(object(), annotation)
    with pytest.raises(NotImplementedError, match="cuSOLVERDx.*not part of this package"):
        Solver(size=(32, 32))
