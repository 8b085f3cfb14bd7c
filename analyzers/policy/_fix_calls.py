"""The calls in Python source that run commands, load code or open sockets, found with ``ast``:
what a fix must not add, since verifying it runs the repository's code with the patch."""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass

from mendline.analyzers.imports import bind_imports

__all__ = ["DangerousCall", "dangerous_calls", "new_dangerous_calls"]

_BUILTINS = frozenset({"eval", "exec", "compile", "__import__"})
# Modules whose every attribute a fix may not newly reach through getattr or a star import.
_MODULES = frozenset({"os", "posix", "nt", "subprocess", "pty", "socket", "importlib", "builtins"})
# Modules a fix may not newly use as a value (assigned, passed, subscripted: ``_o = os``,
# ``vars(os)``): only as the base of an attribute, where the attribute is judged.
_ESCAPING = _MODULES | {"ctypes", "sys.modules"}
# Builtins that reach anything by name: new references to them (not calls) are flagged
# (``f = getattr``), as calls of them on a module are.
_REACHING = frozenset({"getattr", "vars", "globals", "locals"})
_OS = frozenset({"system", "popen", "startfile", "posix_spawn", "posix_spawnp", "fork", "forkpty"})
_SOCKET = frozenset({"socket", "create_connection", "create_server", "fromfd", "socketpair"})
# What of subprocess runs a program: these, and any call of its functions (its constants,
# exceptions and result class are harmless).
_SUBPROCESS = frozenset(
    {"Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}
)


@dataclass(frozen=True)
class DangerousCall:
    """One place the source reaches a dangerous callable: its line, the callable's dotted
    name as resolved through the imports (``os.system``), and the code (``ast.unparse``)."""

    line: int
    name: str
    code: str


def dangerous_calls(source: str) -> list[DangerousCall]:
    """Every call (or, a callable kept in a name, reference) in ``source`` of ``eval``,
    ``exec``, ``compile``, ``__import__``, ``os.system``/``popen``/``exec*``/``spawn*``,
    anything in ``subprocess``, ``pty.spawn``, ``importlib.import_module`` with a computed
    name, the ``socket`` constructors, ``getattr`` on one of those modules with a computed
    or dangerous name, and star imports from them. Imports are followed as a simple walk
    can (``import os as o``, ``from os import system as s``); this is a tripwire for what a
    reviewer would flag, not a sandbox. Raises SyntaxError when ``source`` is not Python."""
    tree = ast.parse(source)
    finder = _Finder(_aliases(tree))
    finder.visit(tree)
    return sorted(finder.found, key=lambda call: (call.line, call.code))


def new_dangerous_calls(old: str | None, new: str) -> list[DangerousCall]:
    """The dangerous calls of ``new`` that ``old`` (None: the file is new) does not have,
    compared by their code, so a call whose arguments changed is new. An ``old`` that does
    not parse has none. Raises SyntaxError when ``new`` does not parse."""
    found = dangerous_calls(new)
    try:
        before = Counter(call.code for call in dangerous_calls(old)) if old else Counter()
    except SyntaxError:
        before = Counter()
    added = []
    for call in found:
        if before[call.code] > 0:
            before[call.code] -= 1
        else:
            added.append(call)
    return added


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Each name an import binds, to the dotted name it stands for."""
    names: dict[str, str] = {"__builtins__": "builtins"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            bind_imports(node, names)
    return names


def _dangerous(name: str, *, called: bool = True) -> bool:
    module, _, attr = name.rpartition(".")
    if attr == "__dict__" and module in _ESCAPING:
        return True  # os.__dict__["system"]: every attribute, by a computed name
    if module == "builtins":
        module, name = "", attr
    if not module:
        return name in _BUILTINS
    if module in ("os", "posix", "nt"):
        return attr in _OS or attr.startswith(("exec", "spawn"))
    if module == "subprocess":
        return attr in _SUBPROCESS or (called and attr[:1].islower())
    if module == "pty":
        return attr in ("spawn", "fork")
    if module == "socket":
        return attr in _SOCKET
    if module == "ctypes" or module.startswith("ctypes."):
        return True  # foreign functions: libc's system() among them
    if module == "asyncio":
        return attr in ("create_subprocess_exec", "create_subprocess_shell")
    if module == "sys":
        return attr == "modules"
    return False


class _Finder(ast.NodeVisitor):
    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases
        self.found: list[DangerousCall] = []
        # Names that are the base of an attribute (``os`` in ``os.path``): judged there.
        self._bases: set[int] = set()

    def _name(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self._name(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def _add(self, node: ast.expr | ast.stmt, name: str) -> None:
        name = name.removeprefix("builtins.")
        self.found.append(DangerousCall(node.lineno, name, ast.unparse(node)))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in _MODULES and any(alias.name == "*" for alias in node.names):
            self._add(node, f"{node.module}.*")

    def visit_Call(self, node: ast.Call) -> None:
        name = self._name(node.func)
        if name in _REACHING and name != "getattr":
            # vars(os), globals()[...]: what they reach is computed
            self._add(node, name)
            for part in (*node.args, *node.keywords):
                self.visit(part)
            return
        args = node.args
        if name == "importlib.import_module":
            if not (args and isinstance(args[0], ast.Constant)):
                self._add(node, name)
        elif name in ("getattr", "builtins.getattr") and len(args) >= 2:
            if isinstance(args[0], ast.Name | ast.Attribute):
                self._bases.add(id(args[0]))  # judged here, with the attribute's name
            owner = self._name(args[0])
            attr = args[1]
            if owner in _MODULES and (
                not isinstance(attr, ast.Constant) or _dangerous(f"{owner}.{attr.value!s}")
            ):
                self._add(node, f"getattr({owner}, ...)")
        elif name is not None and _dangerous(name):
            self._add(node, name)
        else:
            self.generic_visit(node)
            return
        for part in (*node.args, *node.keywords):  # the callee is counted: not as a reference
            self.visit(part)

    def _reference(self, node: ast.Name | ast.Attribute) -> None:
        name = self._name(node)
        if isinstance(node.ctx, ast.Load) and (
            name is not None
            and (_dangerous(name, called=False) or name == "importlib.import_module")
        ):
            self._add(node, name)
        else:
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        name = self.aliases.get(node.id, node.id)
        if isinstance(node.ctx, ast.Load) and id(node) not in self._bases:
            if name in _ESCAPING:
                self._add(node, f"{name} (as a value)")
                return
            if name in _REACHING:
                self._add(node, name)
                return
        self._reference(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name):
            self._bases.add(id(node.value))
        name = self._name(node)
        if isinstance(node.ctx, ast.Load) and name in _ESCAPING and id(node) not in self._bases:
            self._add(node, f"{name} (as a value)")  # sys.modules kept, passed, subscripted
            return
        if isinstance(node.value, ast.Attribute):
            self._bases.add(id(node.value))
        self._reference(node)
