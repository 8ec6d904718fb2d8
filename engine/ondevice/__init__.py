"""On-device training: what is trained (spec), its memory/time profile (memory), the sparse-update planner
(sparse), rematerialization/paging plans (poet) and PyTorch's memory of the same step (torchref)."""
from engine.ondevice.spec import TrainSpec, UpdatePlan, parse_spec, resolve

__all__ = ["TrainSpec", "UpdatePlan", "parse_spec", "resolve"]
