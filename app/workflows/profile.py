"""What a profile is asked for, shared by the CLI (`tinystudio profile`) and the pages (Profile, Compress).

    profile_targets(["esp32s3", "nrf52840"], None)   # [("esp32s3", "esp-nn"), ("nrf52840", "tflm-cmsis-nn")]
    page_precisions(graph)                           # ("int8", "float32") for a float version, ("as-is",) else
"""
from __future__ import annotations

from engine.deployed import precision_of

# What the page's switch says for each precision it offers.
PRECISION_LABELS = {"int8": "As deployed (int8)", "float32": "Float32 (as the version is)", "as-is": "As is"}


def profile_targets(mcu_ids: list[str], runtime: str | None) -> list[tuple[str, str]]:
    """(mcu, runtime) pairs; without a runtime each MCU gets the default runtime for its core
    (hwmodels.runtime.default_runtime: the one Export's estimates assume too)."""
    from hwmodels.runtime import default_runtime

    return [(m, runtime or default_runtime(m)) for m in mcu_ids]


def page_precisions(graph) -> tuple[str, ...]:
    """The precisions the Profile page offers, the default first: a float version is shown as deployed
    (int8) with float32 one switch away; an int8 version is shown as it is."""
    return ("int8", "float32") if precision_of(graph) == "float32" else ("as-is",)


def profile_as_deployed(graph, targets) -> tuple[object, str | None]:
    """(profile, why not int8 or None): the graph as the export would deploy it (int8), or, when an op has no
    int8 kernel, the graph as it is with the reason."""
    from engine.errors import TinyStudioError
    from engine.profile import profile_graph

    try:
        return profile_graph(graph, targets, precision="int8"), None
    except TinyStudioError as e:
        if "int8 (as deployed) is not available" not in str(e):
            raise
        return profile_graph(graph, targets), str(e)
