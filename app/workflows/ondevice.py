"""What the CLI (`tinystudio profile --training`) and the Train-on-device page share: SPEC -> training profile.

    prof = training_report(graph, "sparse:256K", ["stm32f746ng"], data_name="keywords")
"""
from __future__ import annotations

from engine.errors import TinyStudioError

DEFAULT_DATA = "keywords"


def training_report(graph, spec_text: str, mcus: list[str], data_name: str | None = None, optimizer: str = "sgd",
                    weights: str = "float32"):
    from engine.ondevice import parse_spec, resolve
    from engine.ondevice.memory import training_profile

    spec = parse_spec(spec_text)
    data = None
    if spec.kind == "sparse":
        from engine.data import load_dataset

        data = load_dataset(data_name or DEFAULT_DATA)
    elif data_name:
        raise TinyStudioError("--data is only used with --training sparse:BYTES")
    plan = resolve(graph, spec, data)
    return training_profile(graph, plan, list(mcus) or None, optimizer=optimizer, weights=weights)
