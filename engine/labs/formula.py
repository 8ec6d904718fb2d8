"""Score formulas: a tiny arithmetic grammar parsed with `ast` against a whitelist, evaluated without eval.

    f = Formula.parse("accuracy * 100 - latency / 10", names={"accuracy", "latency"})
    f.evaluate({"accuracy": 0.9, "latency": 80.0})   # 82.0

Allowed: numbers, the given names, + - * / ** (unary + -), parentheses, and the functions min, max, abs,
sqrt, log, exp. Every value is a float, so `**` cannot build huge integers; a result that is not a finite
number (division by zero, overflow) is an error the grader reports, never an exception that escapes.
"""
from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass

from engine.errors import TinyStudioError

MAX_LENGTH = 500  # characters: a formula is a line in a challenge file, not a program
MAX_NODES = 200
FUNCTIONS = {"min": min, "max": max, "abs": abs, "sqrt": math.sqrt, "log": math.log, "exp": math.exp}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class FormulaError(TinyStudioError):
    """A formula uses something outside the grammar, names an unknown value, or does not give a number."""


@dataclass(frozen=True)
class Formula:
    text: str
    tree: ast.Expression
    names: frozenset[str]  # the value names the formula reads

    @classmethod
    def parse(cls, text: str, names: set[str] | frozenset[str]) -> "Formula":
        if not isinstance(text, str) or not text.strip():
            raise FormulaError("must be a non-empty expression such as \"accuracy * 100 - latency / 10\"")
        if len(text) > MAX_LENGTH:
            raise FormulaError(f"is {len(text)} characters long; at most {MAX_LENGTH}")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as e:
            raise FormulaError(f"is not a valid expression ({e.msg} at column {e.offset})") from None
        used: set[str] = set()
        nodes = list(ast.walk(tree))
        if len(nodes) > MAX_NODES:
            raise FormulaError(f"has {len(nodes)} parts; at most {MAX_NODES}")
        for node in nodes:
            _check(node, names, used)
        return cls(text.strip(), tree, frozenset(used))

    def evaluate(self, values: dict[str, float]) -> float:
        try:
            out = _eval(self.tree.body, values)
        except (ArithmeticError, ValueError, TypeError) as e:  # 1/0, log(0), overflow, min() of one number
            raise FormulaError(f"formula {self.text!r}: cannot be computed ({e})") from None
        if not math.isfinite(out):
            raise FormulaError(f"formula {self.text!r}: gives {out}, not a finite number")
        return out


def _check(node: ast.AST, names, used: set[str]) -> None:
    if isinstance(node, (ast.Expression, ast.Load)) or type(node) in _BINARY or type(node) in _UNARY:
        return
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        op = node.op
        if type(op) not in _BINARY and type(op) not in _UNARY:
            raise FormulaError(f"uses the operator {type(op).__name__}; allowed: + - * / **")
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise FormulaError(f"holds {node.value!r}; only numbers, names and + - * / ** are allowed")
        return
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            return
        if node.id not in names:
            raise FormulaError(f"names '{node.id}', which is not a value; the values are {', '.join(sorted(names))}")
        used.add(node.id)
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise FormulaError(f"calls something other than {', '.join(FUNCTIONS)}")
        if not node.args:
            raise FormulaError(f"calls {node.func.id}() without arguments")
        return
    raise FormulaError(f"uses {type(node).__name__}; allowed: numbers, names, + - * / **, parentheses and "
                       f"{', '.join(FUNCTIONS)}")


def _eval(node: ast.AST, values: dict[str, float]) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(values[node.id])
    if isinstance(node, ast.BinOp):
        result = _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
        if isinstance(result, complex):  # (-8.0) ** 0.5
            raise ValueError("a negative number to a fractional power")
        return float(result)
    if isinstance(node, ast.UnaryOp):
        return float(_UNARY[type(node.op)](_eval(node.operand, values)))
    if isinstance(node, ast.Call):
        result = FUNCTIONS[node.func.id](*(_eval(a, values) for a in node.args))
        if isinstance(result, complex):
            raise ValueError("complex result")
        return float(result)
    raise FormulaError(f"cannot evaluate {type(node).__name__}")  # parse() refused it already
