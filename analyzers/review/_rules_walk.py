"""One walk of a module's tree that gathers what the review rules need: the facts of each
function that has changed lines (functions without any are skipped), and the sites in the
changed lines, with the exceptions caught around each. An explicit stack, not recursion, so
that deeply nested statements cannot exhaust Python's; a node or a function whose expressions
nest deeper than the rules' readers of an expression follow is left out."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from typing import Any

from mendline.analyzers.imports import bind_imports
from mendline.analyzers.review._inputs import path_key, qualname
from mendline.analyzers.review._rules_facts import (
    CLIENTS,
    MUTATORS,
    REQUEST_VERBS,
    SUPPRESSORS,
    VALIDATORS,
    add_path,
    fixed_collection,
    is_handler,
    item_root,
    note_guards,
    note_mutation,
    numeric_route_keys,
    self_attribute,
    validating,
)
from mendline.analyzers.review._rules_scope import Scope, Site, Source, exception_names

__all__ = ["Walk"]

# A stack item: the node, its scope, the exceptions caught around it, in a lambda.
_Item = tuple[ast.AST, Scope, frozenset[str], bool]


class Walk:
    """The facts of one module; ``finished`` is called with each scope once its body is
    read (the rules run there)."""

    def __init__(self, source: Source, finished: Callable[[Scope], None]) -> None:
        self.source = source
        self.finished = finished
        self._stack: list[_Item | Scope] = []
        self._handlers: dict[type[ast.AST], Callable[[Any, Scope, frozenset[str], bool], None]] = {
            ast.FunctionDef: self._function,
            ast.AsyncFunctionDef: self._function,
            ast.ClassDef: self._class,
            ast.Lambda: self._lambda,
            ast.Try: self._try,
            ast.TryStar: self._try,
            ast.With: self._with,
            ast.AsyncWith: self._with,
            ast.Assign: self._assign,
            ast.AugAssign: self._augassign,
            ast.AnnAssign: self._annassign,
            ast.NamedExpr: self._namedexpr,
            ast.For: self._for,
            ast.AsyncFor: self._for,
            ast.comprehension: self._comprehension,
            ast.If: self._tested,
            ast.While: self._tested,
            ast.IfExp: self._tested,
            ast.Assert: self._tested,
            ast.Match: self._match,
            ast.BoolOp: self._boolop,
            ast.Compare: self._compare,
            ast.BinOp: self._operation,
            ast.Call: self._call,
            ast.Subscript: self._subscript,
            ast.Attribute: self._attribute,
            ast.Delete: self._delete,
            ast.Import: self._import,
            ast.ImportFrom: self._import,
        }

    def module(self, tree: ast.Module) -> Scope:
        """Walk ``tree``; the module's own scope (finished last)."""
        scope = Scope(tree, "<module>")
        self._stack.append(scope)
        self._push(tree.body, scope, frozenset(), False)
        self._run()
        return scope

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> Scope:
        """Read the facts of one function, changed or not (its sites are only those on
        changed lines, as ever)."""
        scope = self._scope(node)
        self._stack.append(scope)
        self._push(node.body, scope, frozenset(), False)
        self._run()
        return scope

    def _run(self) -> None:
        while self._stack:
            try:
                self._drain()
            except RecursionError:
                # The readers of an expression (path_key, origin...) recurse: the node or
                # scope being read nests deeper than they follow (generated code), and is
                # left out rather than failing the review of the file.
                continue

    def _drain(self) -> None:
        stack, handlers = self._stack, self._handlers
        while stack:
            item = stack.pop()
            if isinstance(item, Scope):
                item.resolve(self.source.aliases)
                self.finished(item)
                continue
            node, scope, caught, sync = item
            handler = handlers.get(type(node))
            if handler is None:
                stack.extend((child, scope, caught, sync) for child in ast.iter_child_nodes(node))
            else:
                handler(node, scope, caught, sync)

    def _push(
        self, nodes: Iterable[ast.AST], scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        self._stack.extend((node, scope, caught, sync) for node in nodes)

    def _children(self, node: ast.AST, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        self._stack.extend((child, scope, caught, sync) for child in ast.iter_child_nodes(node))

    # -- scopes --------------------------------------------------------------------------

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> Scope:
        args = node.args
        params = {a.arg: a for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
        for star in (args.vararg, args.kwarg):
            if star is not None:
                params[star.arg] = star
        scope = Scope(node, node.name, is_async=isinstance(node, ast.AsyncFunctionDef))
        scope.params = params
        scope.is_handler = is_handler(node, params)
        scope.checked_all = any(validating(d) for d in node.decorator_list)
        scope.numeric_keys = numeric_route_keys(node)
        positional = [*args.posonlyargs, *args.args]
        pairs = zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
        scope.defaults = [(a.arg, d) for a, d in pairs]
        scope.defaults += [
            (a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d
        ]
        return scope

    def _function(
        self,
        node: ast.FunctionDef | ast.AsyncFunctionDef,
        scope: Scope,
        caught: frozenset[str],
        sync: bool,
    ) -> None:
        first = min((d.lineno for d in node.decorator_list), default=node.lineno)
        if not self.source.touches_lines(first, node.end_lineno or node.lineno):
            return
        inner = self._scope(node)
        self._push(node.decorator_list, scope, caught, sync)
        self._push(node.args.defaults, scope, caught, sync)
        self._push((d for d in node.args.kw_defaults if d), scope, caught, sync)
        self._stack.append(inner)
        self._push(node.body, inner, frozenset(), False)

    def _class(self, node: ast.ClassDef, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        first = min((d.lineno for d in node.decorator_list), default=node.lineno)
        if not self.source.touches_lines(first, node.end_lineno or node.lineno):
            return
        inner = Scope(node, node.name)
        self._push(node.decorator_list, scope, caught, sync)
        self._stack.append(inner)
        self._push(node.body, inner, frozenset(), False)

    def _lambda(self, node: ast.Lambda, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        self._children(node, scope, caught, True)

    # -- control flow --------------------------------------------------------------------

    def _try(
        self, node: ast.Try | ast.TryStar, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        names = caught.union(*(exception_names(h.type) for h in node.handlers))
        self._push(node.body, scope, names, sync)
        self._push((*node.handlers, *node.orelse, *node.finalbody), scope, caught, sync)
        scope.handlers.extend(Site(h, caught) for h in node.handlers if self.source.touches(h))

    def _with(
        self, node: ast.With | ast.AsyncWith, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        inside = caught
        for item in node.items:
            context = item.context_expr
            target = item.optional_vars
            if isinstance(target, ast.Name):
                scope.bind(target.id, context)
                self._client(target.id, context, scope)
            elif target is not None:
                self._bind(target, context, scope, element=True)
            if isinstance(context, ast.Call) and (
                qualname(context.func, self.source.aliases) in SUPPRESSORS
            ):
                inside = inside.union(*(exception_names(a) for a in context.args))
        self._push((i.context_expr for i in node.items), scope, caught, sync)
        self._push(node.body, scope, inside, sync)

    def _tested(
        self,
        node: ast.If | ast.While | ast.IfExp | ast.Assert,
        scope: Scope,
        caught: frozenset[str],
        sync: bool,
    ) -> None:
        note_guards(node.test, scope)
        self._children(node, scope, caught, sync)

    def _match(self, node: ast.Match, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        note_guards(node.subject, scope)  # its cases test the value (case None:, case str():)
        self._children(node, scope, caught, sync)

    def _boolop(self, node: ast.BoolOp, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        for value in node.values[:-1]:
            note_guards(value, scope)
        self._children(node, scope, caught, sync)

    # -- bindings ------------------------------------------------------------------------

    def _bind(self, target: ast.expr, value: ast.expr, scope: Scope, element: bool = False) -> None:
        if isinstance(target, ast.Name):
            scope.bind(target.id, value, element)
            scope.rebound.add(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for part in target.elts:
                self._bind(
                    part.value if isinstance(part, ast.Starred) else part, value, scope, True
                )
        elif isinstance(target, ast.Subscript) and (root := item_root(target)) is not None:
            note_mutation(scope, root, target)

    def _client(self, name: str, value: ast.expr, scope: Scope) -> None:
        if isinstance(value, ast.Call):
            library = CLIENTS.get(qualname(value.func, self.source.aliases) or "")
            if library is not None:
                scope.clients[name] = library

    def _assign(self, node: ast.Assign, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        value = node.value
        for target in node.targets:
            self._bind(target, value, scope)
            if isinstance(target, ast.Name):
                self._client(target.id, value, scope)
            elif isinstance(value, ast.Name) and self_attribute(target):
                scope.stored.setdefault(value.id, self_attribute(target) or "")
        self._children(node, scope, caught, sync)

    def _augassign(
        self, node: ast.AugAssign, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        target = node.target
        root = item_root(target)
        if root is not None:
            note_mutation(scope, root, node)
            if isinstance(target, ast.Name):
                scope.extended.setdefault(root, []).append(node.value)
        if self.source.touches(node):
            scope.operations.append(Site(node, caught, sync))
        self._children(node, scope, caught, sync)

    def _annassign(
        self, node: ast.AnnAssign, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        if node.value is not None:
            self._bind(node.target, node.value, scope)
            if isinstance(node.target, ast.Name):
                self._client(node.target.id, node.value, scope)
        self._children(node, scope, caught, sync)

    def _namedexpr(
        self, node: ast.NamedExpr, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        self._bind(node.target, node.value, scope)
        self._children(node, scope, caught, sync)

    def _for(
        self, node: ast.For | ast.AsyncFor, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        self._bind(node.target, node.iter, scope, element=True)
        self._children(node, scope, caught, sync)

    def _comprehension(
        self, node: ast.comprehension, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        self._bind(node.target, node.iter, scope, element=True)
        for test in node.ifs:
            note_guards(test, scope)
        self._children(node, scope, caught, sync)

    def _delete(self, node: ast.Delete, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        for target in node.targets:
            if isinstance(target, ast.Subscript) and (root := item_root(target)) is not None:
                note_mutation(scope, root, node)
        self._children(node, scope, caught, sync)

    def _import(
        self, node: ast.Import | ast.ImportFrom, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        bind_imports(node, self.source.aliases)

    # -- expressions ---------------------------------------------------------------------

    def _compare(self, node: ast.Compare, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                container = path_key(right)
                if container is not None:
                    if isinstance(left, ast.Constant):
                        scope.contains.add((container, left.value))
                    else:  # a key that varies: a loop through the keys it requires
                        scope.contained.add(container)
                if fixed_collection(right):
                    add_path(left, scope.validated)  # an allowlist: "col in ("a", "b")"
            left = right
        if self.source.touches(node):
            scope.operations.append(Site(node, caught, sync))
        self._children(node, scope, caught, sync)

    def _operation(self, node: ast.BinOp, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        if self.source.touches(node):
            scope.operations.append(Site(node, caught, sync))
        self._children(node, scope, caught, sync)

    def _call(self, node: ast.Call, scope: Scope, caught: frozenset[str], sync: bool) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            attr, receiver = func.attr, func.value
            if attr in MUTATORS and (root := item_root(receiver)) is not None:
                note_mutation(scope, root, node)  # items.append(x), groups[k].append(x)
            if attr in VALIDATORS:
                add_path(receiver, scope.validated)
            if attr == "setdefault" and node.args and isinstance(node.args[0], ast.Constant):
                container = path_key(receiver)
                if container is not None:  # the key is there from now on
                    scope.contains.add((container, node.args[0].value))
            if isinstance(receiver, ast.Name):
                if attr in REQUEST_VERBS:  # whether the name is a client is known at the end
                    scope.client_calls.append((receiver.id, node))
                if attr == scope.name and receiver.id in ("self", "cls"):
                    scope.self_calls.append(node)
            callee = attr
        elif isinstance(func, ast.Name):
            callee = func.id
            if callee == scope.name:
                scope.self_calls.append(node)
        else:
            callee = ""
        if "valid" in callee.lower() or "schema" in callee.lower():
            for arg in (*node.args, *(k.value for k in node.keywords)):
                add_path(arg, scope.checked)
                add_path(arg, scope.validated)
        if self.source.touches(node):
            scope.calls.append(Site(node, caught, sync))
        self._children(node, scope, caught, sync)

    def _subscript(
        self, node: ast.Subscript, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        if isinstance(node.ctx, ast.Load) and self.source.touches(node):
            scope.subscripts.append(Site(node, caught, sync))
        self._children(node, scope, caught, sync)

    def _attribute(
        self, node: ast.Attribute, scope: Scope, caught: frozenset[str], sync: bool
    ) -> None:
        if isinstance(node.ctx, ast.Load) and self.source.touches(node):
            scope.attributes.append(Site(node, caught, sync))
        self._stack.append((node.value, scope, caught, sync))
