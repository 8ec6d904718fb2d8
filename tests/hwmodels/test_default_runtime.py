"""hwmodels.runtime.default_runtime: what Profile shows by default and Export's estimates assume, per MCU."""
import pytest

from engine.errors import TinyStudioError
from hwmodels.mcu import get_mcu
from hwmodels.runtime import default_runtime, get_runtime


@pytest.mark.parametrize("mcu, runtime", [("esp32s3", "esp-nn"), ("esp32", "esp-nn"), ("esp32c3", "esp-nn"),
                                          ("nrf52840", "tflm-cmsis-nn"), ("stm32f746ng", "tflm-cmsis-nn"),
                                          ("gap9", "tflm-reference")])
def test_by_mcu_id_object_and_core(mcu, runtime):
    m = get_mcu(mcu)
    assert default_runtime(mcu) == default_runtime(m) == default_runtime(m.core) == runtime
    assert get_runtime(runtime).supports(m.core)


def test_unknown_mcu():
    with pytest.raises(TinyStudioError, match="unknown MCU 'stm32x'"):
        default_runtime("stm32x")
