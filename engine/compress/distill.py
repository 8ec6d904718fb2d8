"""distill: knowledge distillation, the previous version of the model as teacher for the compressed student.

The student (the graph given) is fine-tuned on the data set with the loss
alpha x CE(student, labels) + (1 - alpha) x T^2 x KL(softmax(teacher / T) || softmax(student / T))
(Hinton et al. 2015), through engine.train's `teacher`. The teacher must be a float graph with the same
output shape; in the studio it is the version the student was made from, on the command line
`--param teacher=FILE` (a model file, a .tsgraph or a zoo: spec; without it the student teaches itself,
"born-again" self-distillation). A student with weight-only quantized layers (ternary) is trained in float:
run the quantizing action again afterwards.
"""
from __future__ import annotations

from engine.compress.base import Action, ActionContext, CompressError, Param, dequantize_weights, is_quantized_graph
from engine.compress.measure import accuracy
from engine.compress.quantize import train_json
from engine.ir import Graph


def run_distill(graph: Graph, params: dict, ctx: ActionContext) -> tuple[Graph, dict]:
    from engine.train import train
    teacher = params.get("teacher")
    self_taught = teacher is None
    teacher = graph if self_taught else teacher
    if not isinstance(teacher, Graph):
        raise CompressError("distill: the teacher must be a model (a graph), got " + type(teacher).__name__)
    if is_quantized_graph(graph) or is_quantized_graph(teacher):
        raise CompressError("distill trains float graphs: give the float student and the float teacher")
    t_out = teacher.tensors[teacher.outputs[0]].shape
    s_out = graph.tensors[graph.outputs[0]].shape
    if t_out != s_out:
        raise CompressError(f"distill: the teacher's output {list(t_out)} does not match the student's {list(s_out)}")
    teacher_acc = accuracy(teacher, ctx.data)
    ctx.say(0.02, "distilling")
    student, tr = train(dequantize_weights(graph), ctx.data, epochs=params["epochs"], lr=params["lr"],
                        seed=ctx.seed, teacher=dequantize_weights(teacher), distill_alpha=params["alpha"],
                        distill_temperature=params["temperature"], progress=ctx.sub(0.02, 0.98))
    ctx.say(1.0, "distilled")
    return student, {"teacher": teacher.name, "self_distillation": self_taught, "teacher_accuracy": teacher_acc,
                     "alpha": params["alpha"], "temperature": params["temperature"], "training": train_json(tr)}


ACTION = Action("distill", "knowledge distillation: fine-tune the student on the data set and on the softened "
                "outputs of a teacher (the previous version)", {
                    "teacher": Param("model", None, "teacher model (default: the student itself)"),
                    "epochs": Param("int", 10, "training epochs", min=1, max=1000),
                    "lr": Param("float", 1e-3, "learning rate (Adam)", min=0.0, max=1.0, min_open=True),
                    "alpha": Param("float", 0.5, "weight of the label loss (1 - alpha: the teacher's)", min=0.0,
                                   max=1.0),
                    "temperature": Param("float", 4.0, "softmax temperature of the distillation loss", min=0.0,
                                         max=100.0, min_open=True)}, run_distill, trains=True)
