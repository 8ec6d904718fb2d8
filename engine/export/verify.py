"""The result of running a generated library on test inputs and comparing with the int8 reference."""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.export.golden import Mismatch


@dataclass(frozen=True)
class VerifyResult:
    mode: str  # "host" | "qemu"
    inputs: int  # inferences compared (the golden input and the random ones)
    matched: int  # inferences whose every output byte equals the int8 reference
    first_mismatch: Mismatch | None
    wall_s: float
    machine: str = ""  # QEMU machine (qemu mode)
    instructions_per_inference: float | None = None  # executed instructions inside <name>_run (qemu mode)
    instructions_per_mac: float | None = None
    stack_bytes: int | None = None  # deepest stack below <name>_run, painted-stack measurement (qemu mode)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def bit_exact(self) -> bool:
        return self.inputs > 0 and self.matched == self.inputs

    def summary(self) -> str:
        head = f"{self.mode}{' ' + self.machine if self.machine else ''}: "
        if self.bit_exact:
            s = head + f"bit-exact on {self.inputs} inputs"
        else:
            s = head + f"{self.inputs - self.matched} of {self.inputs} inputs differ; " + (
                self.first_mismatch.describe() if self.first_mismatch else "")
        if self.instructions_per_inference is not None:
            s += f"; {self.instructions_per_inference:,.0f} instructions per inference"
            if self.instructions_per_mac is not None:
                s += f" ({self.instructions_per_mac:.2f} per MAC)"
        return s

    def to_json(self) -> dict:
        return {"mode": self.mode, "inputs": self.inputs, "matched": self.matched, "bit_exact": self.bit_exact,
                "first_mismatch": self.first_mismatch.to_json() if self.first_mismatch else None,
                "machine": self.machine or None,
                "instructions_per_inference": self.instructions_per_inference,
                "instructions_per_mac": None if self.instructions_per_mac is None
                else round(self.instructions_per_mac, 4),
                "stack_bytes": self.stack_bytes, "wall_s": round(self.wall_s, 3), "notes": list(self.notes)}
