"""`calculate_output` of a multi grader: arithmetic over the graders' names, never `eval`.

The formula is parsed with `ast` and walked node by node; only numbers, the graders' names,
arithmetic, comparisons, `and`/`or`/`not`, `x if c else y` and a few math functions are allowed.
Anything else (attributes, subscripts, lambdas, other names) is a FormulaError.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Set
from typing import Any

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "log": math.log,
    "round": round,
}
MAX_LENGTH = 2000
MAX_EXPONENT = 64


class FormulaError(ValueError):
    """A formula that does not parse, uses what is not allowed, or names no grader."""


def check(formula: str, names: Set[str]) -> ast.expr:
    """The parsed formula, refused if it uses anything but `names` and the allowed operations."""
    if len(formula) > MAX_LENGTH:
        raise FormulaError(f"calculate_output is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(formula.strip(), mode="eval").body
    except SyntaxError as error:
        raise FormulaError(f"calculate_output does not parse: {error.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in FUNCTIONS:
            raise FormulaError(
                f"calculate_output names {node.id!r}, which is no grader of this multi grader "
                f"(graders: {', '.join(sorted(names))}) nor a function ({', '.join(FUNCTIONS)})"
            )
        if not isinstance(node, _ALLOWED):
            raise FormulaError(f"calculate_output may not use {type(node).__name__}: only arithmetic")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise FormulaError("calculate_output may call only " + ", ".join(FUNCTIONS))
        if isinstance(node, ast.Call) and node.keywords:
            raise FormulaError("calculate_output's functions take no keyword arguments")
    return tree


def evaluate(formula: str, values: Mapping[str, float]) -> float:
    tree = check(formula, set(values))
    try:
        result = _value(tree, values)
    except (ArithmeticError, ValueError, TypeError) as error:
        raise FormulaError(f"calculate_output could not be computed: {error}") from None
    if isinstance(result, bool):
        return float(result)
    if not isinstance(result, int | float):
        raise FormulaError("calculate_output did not give a number")
    return float(result)


_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.And,
    ast.Or,
    *_BINARY,
    *_UNARY,
    *_COMPARE,
)


def _value(node: ast.expr, values: Mapping[str, float]) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise TypeError(f"{node.value!r} is not a number")
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, values), _value(node.right, values)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError(f"exponent {right} is over {MAX_EXPONENT}")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_value(node.operand, values))
    if isinstance(node, ast.BoolOp):
        results = [_value(part, values) for part in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _value(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _value(right_node, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _value(node.body if _value(node.test, values) else node.orelse, values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return FUNCTIONS[node.func.id](*(_value(arg, values) for arg in node.args))
    raise TypeError(f"{type(node).__name__} is not allowed")
