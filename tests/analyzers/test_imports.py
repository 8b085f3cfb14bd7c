"""bind_imports: the names each kind of import statement binds, and to what."""

from __future__ import annotations

import ast

import pytest

from mendline.analyzers.imports import bind_imports


@pytest.mark.parametrize(
    ("code", "bound"),
    [
        ("import os", {"os": "os"}),
        ("import os.path", {"os": "os"}),
        ("import os.path as p", {"p": "os.path"}),
        ("import subprocess as sp, json", {"sp": "subprocess", "json": "json"}),
        ("from subprocess import run", {"run": "subprocess.run"}),
        ("from os import system as s, popen", {"s": "os.system", "popen": "os.popen"}),
        ("from os.path import join", {"join": "os.path.join"}),
        ("from os import *", {}),
        ("from . import views", {}),
        ("from .shop import orders", {}),
    ],
)
def test_the_names_an_import_binds(code: str, bound: dict[str, str]) -> None:
    (node,) = ast.parse(code).body
    assert isinstance(node, ast.Import | ast.ImportFrom)
    names: dict[str, str] = {}
    bind_imports(node, names)
    assert names == bound
