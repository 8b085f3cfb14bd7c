"""The shape of a line of Python: the expression in it that can fail, with what does not
make it (local names, numbers, most strings) replaced by placeholders (pure)."""

from __future__ import annotations

import ast
import copy
import re
import sys

__all__ = ["MIN_WEIGHT", "normal_shape", "own_expressions", "shape_head", "shape_of"]

#: The least weight a shape must have to be a rule (see ``shape_of``): below it, a shape is
#: common in correct code (``int(_)``, ``_.x``, ``_['key']``, ``_ / len(_)``).
MIN_WEIGHT = 4
_LONGEST_LINE = 400
_LONGEST_SHAPE = 600

# Placeholders: a local name, a number, a string that is not kept, bytes. They are names, so a
# shape is a Python expression again (its root's kind is read back from it).
_LOCAL, _NUMBER, _STRING, _BYTES = "_", "_n", "_s", "_b"
_PLACEHOLDERS = frozenset({_LOCAL, _NUMBER, _STRING, _BYTES})
# Names that are modules or framework globals when an attribute is read from them (kept:
# ``json.loads`` is not ``yaml.loads``); any other lowercase name there is a local.
_MODULES = frozenset(sys.stdlib_module_names) | {
    *("bytes", "dict", "float", "int", "list", "set", "str", "tuple"),
    *("aiohttp", "arrow", "boto3", "dateutil", "django", "flask", "httpx", "jwt", "np"),
    *("numpy", "orjson", "pd", "pandas", "pendulum", "redis", "request", "requests"),
    *("simplejson", "sqlalchemy", "ujson", "yaml"),
}
# Calls that do not fail on what they are given (or fail only when their object is None,
# which every method call shares): a line's failure is in what they are applied to.
_SAFE_FUNCTIONS = frozenset(
    {"bool", "callable", "hasattr", "id", "isinstance", "issubclass", "print", "repr", "str"}
)
_SAFE_METHODS = frozenset(
    {"add", "append", "copy", "endswith", "extend", "get", "items", "keys", "lower", "lstrip"}
    | {"replace", "rstrip", "setdefault", "split", "startswith", "strip", "upper", "values"}
)
# Comparisons that can raise (ordering None, ``in`` None); ==, !=, is and is not cannot.
_FAILING_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_KEPT_STRING = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def shape_of(line: str) -> str | None:
    """The shape of a culprit line (one line of Python, maybe a fragment: ``return a / b``, an
    ``if``/``elif``/``while``/``for``/``with`` header, a ``key: value,`` or an argument line of
    a longer statement), or None when it is not Python or its shape is too common to be a
    rule.

    The shape is the expression that can fail (the outermost call, subscript, attribute,
    arithmetic or ordering comparison of the statement, past wrappers such as ``not``, a
    tuple or ``str()``), written back as Python with local names as ``_``, numbers as ``_n``
    and other strings as ``_s``; kept are called names and module-like call targets
    (``int``, ``json.loads``, ``request.args.get``), attribute names, string keys,
    identifier-like string arguments, keyword names and operators: ``int(request.args['n'])``.
    Its weight (calls, attributes and their names, subscripts, operators, kept names and
    strings) must be at least ``MIN_WEIGHT``, and a call must be given more than placeholders
    (``json.loads(_)`` would flag every call of it: the input that failed is not in it)."""
    text = line.strip()
    if not text or len(text) > _LONGEST_LINE:
        return None
    for expr in _top_expressions(text):
        target = _target(expr)
        if target is None:
            continue
        normal = normal_shape(target)
        if _weight(normal) < MIN_WEIGHT or _bare_call(normal):
            continue
        shape = ast.unparse(normal)
        return shape if len(shape) <= _LONGEST_SHAPE else None
    return None


def _top_expressions(text: str) -> list[ast.expr]:
    """The expressions of the one statement ``text`` holds (or of its header), trying the
    ways a line of a longer statement can be read; [] when none is Python."""
    header = text.endswith(":")
    if text.startswith("elif ") and header:
        text = text[2:]  # "elif x:" reads as "if x:"
    if text.startswith(("except", "case ", "@", ")", "]", "}", ".")):
        return []
    tries: list[tuple[str, bool]] = [(text + "\n    pass" if header else text, False)]
    body = text.rstrip(",").rstrip("\\").rstrip()
    tries += [(f"_({body})", True), (f"{{{body}}}", True)]
    for source, wrapped in tries:
        try:
            module = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        if len(module.body) != 1:
            return []
        stmt = module.body[0]
        if not wrapped:
            return own_expressions(stmt)
        outer = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(outer, ast.Call):  # an argument line: its arguments
            return [*outer.args, *(k.value for k in outer.keywords)]
        if isinstance(outer, ast.Dict):  # a "key": value line: its values
            return list(outer.values)
    return []


def own_expressions(stmt: ast.stmt) -> list[ast.expr]:
    """The expressions a statement evaluates itself (a compound statement's header, not its
    body); an augmented assignment as the operation it is (``_ += x`` as ``_ + x``). Raising,
    asserting, deleting and definitions have none: they fail on purpose or cannot."""
    if isinstance(stmt, ast.Expr | ast.Return | ast.Assign | ast.AnnAssign):
        return [stmt.value] if stmt.value is not None else []
    if isinstance(stmt, ast.AugAssign):
        target = _as_load(stmt.target)
        node = ast.BinOp(left=target, op=stmt.op, right=stmt.value)
        return [ast.copy_location(node, stmt)]
    if isinstance(stmt, ast.If | ast.While):
        return [stmt.test]
    if isinstance(stmt, ast.For | ast.AsyncFor):
        return [stmt.iter]
    if isinstance(stmt, ast.With | ast.AsyncWith):
        return [item.context_expr for item in stmt.items]
    if isinstance(stmt, ast.Match):
        return [stmt.subject]
    return []


def _as_load(target: ast.expr) -> ast.expr:
    """An assignment's target as the value it reads (``x.total`` in ``x.total += 1``)."""
    loaded = copy.deepcopy(target)
    for node in ast.walk(loaded):
        if isinstance(node, ast.Name | ast.Attribute | ast.Subscript | ast.Starred):
            node.ctx = ast.Load()
    return loaded


def _fails(node: ast.AST) -> bool:
    """Whether evaluating ``node`` itself can raise (not only what it holds)."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id not in _SAFE_FUNCTIONS
        return not (isinstance(func, ast.Attribute) and _safe_method(func))
    if isinstance(node, ast.Attribute):
        return not _safe_method(node)
    if isinstance(node, ast.Compare):
        return any(isinstance(op, _FAILING_COMPARE) for op in node.ops)
    return isinstance(node, ast.Subscript | ast.BinOp)


def _safe_method(node: ast.Attribute) -> bool:
    """Whether ``node`` is a method that does not fail of a local object (``data.get``, not
    ``requests.get`` or ``User.objects.get``)."""
    if node.attr not in _SAFE_METHODS:
        return False
    root = node.value
    while isinstance(root, ast.Attribute):
        root = root.value
    return not (isinstance(root, ast.Name) and _global(root.id))


def _global(name: str) -> bool:
    """Whether a name is a module's or a class's (kept in a shape), not a local's."""
    return name in _MODULES or name[:1].isupper()


def _operands(node: ast.AST) -> list[ast.expr]:
    """What a node that cannot fail itself is applied to (a safe call: its object and
    arguments, not the method's name)."""
    if isinstance(node, ast.Call):
        base = [node.func.value] if isinstance(node.func, ast.Attribute) else []
        return [*base, *node.args, *(k.value for k in node.keywords)]
    found: list[ast.expr] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            found.append(child)
        elif isinstance(child, ast.comprehension):
            found += [child.iter, *child.ifs]
        elif isinstance(child, ast.keyword):
            found.append(child.value)
    return found


def _has_failing(node: ast.expr) -> bool:
    if _fails(node):
        return True
    return any(_has_failing(child) for child in _operands(node))


def _target(expr: ast.expr) -> ast.expr | None:
    """The outermost part of ``expr`` that can fail: down through wrappers while one operand
    holds what can fail; a wrapper of several such operands is itself the target."""
    node = expr
    while not _fails(node):
        holding = [child for child in _operands(node) if _has_failing(child)]
        if not holding:
            return None
        if len(holding) > 1:
            return node
        node = holding[0]
    return node


def normal_shape(node: ast.expr) -> ast.expr:
    """A copy of ``node`` with what does not make its shape replaced by placeholders."""
    return _Normaliser().visit(_clone(node))  # type: ignore[no-any-return]


def _clone(node: ast.expr) -> ast.expr:
    return copy.deepcopy(node)


class _Normaliser(ast.NodeTransformer):
    """Replaces local names and constants by placeholders, keeping call targets, module-like
    bases, capitalised names, string keys and identifier-like string arguments."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if not isinstance(node.func, ast.Name):  # a called name is kept as it is
            node.func = self.visit(node.func)
        node.args = [self.visit(a) for a in node.args]
        node.keywords = [self.visit(k) for k in node.keywords]
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        base = node.value
        if isinstance(base, ast.Name) and _global(base.id):
            return node
        node.value = self.visit(base)
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        node.value = self.visit(node.value)
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str | int):
            return node  # a string key or an index is what the subscript is
        if isinstance(key, ast.UnaryOp) and isinstance(key.operand, ast.Constant):
            return node  # [-1]
        node.slice = self.visit(key)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return node if node.id[:1].isupper() else ast.Name(id=_LOCAL, ctx=ast.Load())

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if value is None or isinstance(value, bool) or value is Ellipsis:
            return node
        if isinstance(value, str):
            return node if _KEPT_STRING.fullmatch(value) else ast.Name(id=_STRING, ctx=ast.Load())
        return ast.Name(id=_BYTES if isinstance(value, bytes) else _NUMBER, ctx=ast.Load())

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        return ast.Name(id=_STRING, ctx=ast.Load())


def _weight(node: ast.expr) -> int:
    """How much of a normalised shape is particular: calls, subscripts and operators one
    each, an attribute two (its name too), kept names, string keys and keyword names one."""
    weight = 0
    for part in ast.walk(node):
        if isinstance(part, ast.Call | ast.Subscript | ast.BinOp):
            weight += 1
        elif isinstance(part, ast.Attribute):
            weight += 2
        elif isinstance(part, ast.Compare):
            weight += len(part.ops)
        elif isinstance(part, ast.Name):
            weight += part.id not in _PLACEHOLDERS
        elif isinstance(part, ast.Constant):
            weight += isinstance(part.value, str)
        elif isinstance(part, ast.keyword):
            weight += part.arg is not None
    return weight


def _bare_call(node: ast.expr) -> bool:
    """Whether a shape is a call of placeholders only (``json.loads(_)``, ``requests.get(_)``):
    what failed was its input, which such a shape does not tell, so it would flag every call
    of that function."""
    if not isinstance(node, ast.Call):
        return False
    given = [*node.args, *(k.value for k in node.keywords)]
    return all(isinstance(a, ast.Name) and a.id in _PLACEHOLDERS for a in given)


def shape_head(node: ast.expr) -> tuple[str, str]:
    """A shape's root, cheap to read from code: its kind and its call's name, attribute or
    operator (what filters the nodes worth normalising)."""
    kind = type(node).__name__
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        return kind, name
    if isinstance(node, ast.Attribute):
        return kind, node.attr
    if isinstance(node, ast.BinOp):
        return kind, type(node.op).__name__
    if isinstance(node, ast.Compare):
        return kind, type(node.ops[0]).__name__
    return kind, ""
