"""hwmodels.runtime.default_runtime: what Profile shows by default and Export's estimates assume, per MCU."""
import pytest

from engine.errors import TinyStudioError
from hwmodels.mcu import get_mcu
from hwmodels.mcu import CORES
from hwmodels.runtime import default_runtime, get_runtime, runtimes_for_core


# What TinyStudio deploys is its own generated C, on every core (it was TFLM + CMSIS-NN / ESP-NN / reference).
@pytest.mark.parametrize("mcu, runtime", [("esp32s3", "tinystudio-c"), ("esp32", "tinystudio-c"),
                                          ("esp32c3", "tinystudio-c"), ("nrf52840", "tinystudio-c"),
                                          ("stm32f746ng", "tinystudio-c"), ("gap9", "tinystudio-c")])
def test_by_mcu_id_object_and_core(mcu, runtime):
    m = get_mcu(mcu)
    assert default_runtime(mcu) == default_runtime(m) == default_runtime(m.core) == runtime
    assert get_runtime(runtime).supports(m.core)


def test_unknown_mcu():
    with pytest.raises(TinyStudioError, match="unknown MCU 'stm32x'"):
        default_runtime("stm32x")


@pytest.mark.parametrize("core", CORES)
def test_every_core_defaults_to_the_generated_c_and_keeps_its_other_runtimes(core):
    from engine.export.pipeline import estimate_runtime

    assert default_runtime(core) == estimate_runtime(core) == "tinystudio-c"  # Profile and Export agree
    others = runtimes_for_core(core)
    assert "tinystudio-c" in others and len(others) >= 2  # the picker still offers a TFLM-based runtime
