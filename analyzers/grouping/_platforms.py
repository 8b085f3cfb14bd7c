"""Stack frames of other languages as Sentry's default grouping (newstyle:2023-01-11) reads them:
which of a frame's parts say where an error happened, and which frames are the application's.

Per platform, a frame counts by its module, else its file's lowercased base name (never a URL's),
its function and, for JavaScript, Node, PHP and Ruby, its source line; never line or column
numbers. Each language's generated names are normalised (Java's lambdas and proxies, Ruby's
blocks and templates, PHP's anonymous classes, JavaScript's anonymous functions), and a browser
script's URL becomes a module without its build hash, version or folders (Sentry's
``generate_module``), so a new build does not split an issue. Frames of transpilers, polyfills,
the event loop and SDKs never count, as Sentry's ``-group`` rules say.

Python (and events without a platform, mendline's own) are read by fingerprint.py as before;
nothing here applies to them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FrameRules", "default_in_app", "frame_culprit", "generate_module", "rules_for"]

#: What a frame groups by: (module or file name, function, source line); "" or None for a
#: part that does not count.
FrameKey = tuple[str, str, str | None]

_JAVASCRIPT = frozenset({"javascript", "node"})
_NATIVE = frozenset({"native", "cocoa", "objc", "swift", "c"})
# Where source lines are good enough to group by (Sentry's contextline_platforms, less python).
_CONTEXT_LINES = frozenset({"javascript", "node", "php", "ruby"})
# Longer source lines are minified or generated code that changes with every build.
_MAX_CONTEXT_LINE = 120
_CACHE_SIZE = 8192

# -- names that code generation varies -----------------------------------------------------------

# JVM classes generated at run time: reflection accessors, Spring's CGLIB, Guice's enhancers,
# Hibernate's proxies, javassist and Clojure's anonymous functions. The name up to the marker
# stays; what follows it is a counter or a hash.
_JAVA_GENERATED = tuple(
    re.compile(pattern)
    for pattern in (
        r"(sun\.reflect\.Generated(?:Serialization)?ConstructorAccessor)\d+",
        r"(\$\$[\w]+?CGLIB\$\$)[a-fA-F0-9]+(?:_[0-9]+)?",
        r"(\$\$_javassist)(?:_seam)?(?:_[0-9]+)?",
        r"(\$fn__)\d+",
        r"(\$\$?EnhancerBy[\w]+?\$?\$)[a-fA-F0-9]+(?:_[0-9]+)?",
        r"(\$\$?FastClassBy[\w]+?\$?\$)[a-fA-F0-9]+(?:_[0-9]+)?",
        r"(\$\$?HibernateProxy\$?\$)\w+(?:_[0-9]+)?",
    )
)
# Reflection's method accessors count by their prefix alone (Sentry leaves no marker).
_JAVA_ACCESSORS = (
    "sun.reflect.GeneratedMethodAccessor",
    "jdk.internal.reflect.GeneratedMethodAccessor",
)
_JAVASSIST = re.compile(r"(\$\$_javassist)(?:_seam)?(?:_[0-9]+)?")
_RUBY_TEMPLATE = re.compile(r"__\d{4,}_\d{4,}$")
_JS_ANONYMOUS = frozenset({"", "?", "<anonymous function>", "<anonymous>", "Anonymous function"})
# A frame whose SDK knew no function: none sent, or "?" (what the relay's conversion, as
# Sentry's display, puts for none).
_NO_FUNCTION = frozenset({"", "?"})
# Frames that are not code one could have written: eval'd strings, the engine's own.
_JS_LOW_QUALITY_PATHS = frozenset({"[native code]", "native code", "eval code", "<anonymous>"})

# -- frames that never count (Sentry's "-group" rules) --------------------------------------------

# Transpilers and polyfills (module:@babel/** and the like).
_NOISE_MODULES = ("@babel/", "core-js/", "regenerator-runtime/", "tslib/")
# Node's event loop, and Babel's class helper in React Native.
_JS_NOISE_FUNCTIONS = frozenset(
    {
        "runMicrotasks",
        "queueMicrotask",
        "processTicksAndRejections",
        "runNextTicks",
        "nextTick",
        "_callSuper",
    }
)
# The Sentry Java SDK's own frames; reflection and thread pools between the app's frames.
_JVM_NOISE_MODULES = ("io.sentry.", "java.lang.reflect.")
_JVM_NOISE_CALLS = frozenset(
    {
        ("java.lang.Class", "getMethod"),
        ("java.util.concurrent.ThreadPoolExecutor", "runWorker"),
    }
)
# Other monitoring tools' frames (path:**/*newrelic*/**, **/*LogRocket*/**).
_TELEMETRY_FOLDERS = ("newrelic", "logrocket")

# -- in-app defaults (Sentry's "-app" / "+app" rules, and the SDKs' own defaults) ---------------

# Folders that hold installed packages, whatever the language.
_LIBRARY_FOLDERS = ("/vendor/", "/site-packages/", "/dist-packages/", "/node_modules/")
_GO_MODULE_CACHE = "/go/pkg/mod/"
_CDNS = (
    "https://unpkg.com/",
    "https://cdnjs.cloudflare.com/",
    "https://cdn.jsdelivr.net/",
    "https://esm.run/",
)
# JVM frameworks and the JDK (category=framework, and kotlin, netty, ktor, java, javax).
_JVM_LIBRARIES = (
    "akka.",
    "com.fasterxml.",
    "com.microsoft.",
    "com.sun.",
    "feign.",
    "io.ktor.",
    "io.netty.",
    "io.opentelemetry.",
    "io.sentry.",
    "java.",
    "javax.",
    "jdk.",
    "kotlin.",
    "kotlinx.",
    "oauth.",
    "org.apache.",
    "org.glassfish.",
    "org.jboss.",
    "org.jdesktop.",
    "org.postgresql.",
    "org.springframework.",
    "org.web3j.",
    "reactor.core.",
    "scala.",
    "sun.",
)
# .NET: the runtime's and the SDK's namespaces (sentry-dotnet's default InAppExclude).
_DOTNET_LIBRARIES = ("System.", "Microsoft.", "Mono.", "Sentry.")


def generate_module(url: str) -> str:
    """A module name made from a script's URL, as Sentry makes one for browser JavaScript.

    The URL's path without extension and ``.min``; after a 32 or 40 hex digit hash folder,
    only what follows it; else without its leading folders that are common prefixes
    (``static``, ``js``, ``build``, ``node_modules``, versions, short hashes, dot folders) and
    without a trailing ``-hash`` or ``.hash``: ``https://shop.example.com/static/js/main.4f3a2b1c.js``
    gives ``main``. ``"<unknown module>"`` when nothing is left.
    """
    stem, _ = posixpath.splitext(urlsplit(url).path)
    stem = stem.removesuffix(".min")
    folders = stem.split("/")
    for index, folder in enumerate(folders):
        if _BUILD_HASH.fullmatch(folder):
            return "/".join(folders[index + 1 :]) or _UNKNOWN_MODULE
    start = 0
    while start < len(folders) - 1 and _COMMON_FOLDER.fullmatch(folders[start]):
        start += 1
    name = _COMMITISH.sub("", "/".join(folders[start:]))
    return name or _UNKNOWN_MODULE


_UNKNOWN_MODULE = "<unknown module>"
_BUILD_HASH = re.compile(r"[0-9a-fA-F]{32}(?:[0-9a-fA-F]{8})?")
_COMMON_FOLDER = re.compile(
    r"""(?ix)
      # (the empty folder before a leading slash)
    | (?:java)?scripts? | js | build | static | node_modules | bower_components
    | [_.~].*           # dot, underscore and tilde folders
    | v?(?:\d+\.)*\d+   # versions: v1, 1.0.0
    | [0-9a-f]{7,8} | [0-9a-f]{32} | [0-9a-f]{40}
    """
)
_COMMITISH = re.compile(r"[-.][0-9a-fA-F]{7,}$")


def default_in_app(platform: str | None, frame: Mapping[str, Any]) -> bool:
    """Whether a frame the SDK did not mark is the application's code, by Sentry's default
    in-app rules: not when its path is in a folder of installed packages (``node_modules``,
    ``vendor``, ``site-packages``, Go's module cache), a CDN, or its module a JVM framework,
    the JDK or (for .NET) the runtime; JavaScript bundled by webpack or Expo (``webpack:``,
    ``app:``) is, unless it is a package. Anything else is taken to be the application's.

    ``frame`` is a Sentry frame (``filename``, ``abs_path``, ``module``); an SDK's own
    ``in_app`` is never overridden by this.
    """
    paths = [_slashes(path) for path in (frame.get("abs_path"), frame.get("filename")) if path]
    module = str(frame.get("module") or "")
    abs_path = paths[0] if paths else ""
    if platform in _JAVASCRIPT and abs_path.startswith(("webpack:", "app:")):
        filename = _slashes(str(frame.get("filename") or ""))
        return not (filename.startswith("~/") or "/node_modules/" in "/" + filename)
    if any(folder in "/" + path for path in paths for folder in _LIBRARY_FOLDERS):
        return False
    if any(_GO_MODULE_CACHE in path or path.startswith(_CDNS) for path in paths):
        return False
    if module.startswith("unpkg/") or _in_namespace(module, _JVM_LIBRARIES):
        return False
    return not (platform == "csharp" and _in_namespace(module, _DOTNET_LIBRARIES))


def frame_culprit(platform: str, frame: Mapping[str, Any]) -> str:
    """Where a frame of ``platform`` is, for an issue's culprit: ``module.function``
    (``package.Class.method`` in Java, ``import/path.(*T).Method`` in Go), the module made
    from a browser script's URL, else ``filename in function``."""
    function = str(frame.get("function") or "?")
    if platform == "csharp":
        function = function.split(" (", 1)[0]
    module = frame.get("module")
    if not module and platform in _JAVASCRIPT:
        path = str(frame.get("abs_path") or frame.get("filename") or "")
        if path.startswith(("http:", "https:", "webpack:", "app:")):
            module = generate_module(path)
    if module:
        return f"{module}.{function}"
    return f"{frame.get('filename') or '?'} in {function}"


class FrameRules:
    """How frames of one platform group: which parts count, normalised as that language
    needs. Decided once per platform (``rules_for``); ``keys`` runs per event."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self._javascript = platform in _JAVASCRIPT
        self._context_lines = platform in _CONTEXT_LINES
        self._module: Callable[[str, str], str] = _MODULES.get(platform, _plain_module)
        self._function: Callable[[str], str] = _FUNCTIONS.get(
            "native" if platform in _NATIVE else platform, _plain_function
        )
        self._cache: dict[tuple[str | None, ...], FrameKey | None] = {}

    def keys(self, frames: Sequence[Mapping[str, Any]], *, in_app_only: bool) -> list[FrameKey]:
        """What each frame that counts groups by, oldest first; library frames left out when
        ``in_app_only``."""
        if self._javascript and len(frames) == 1 and _lone_url_frame(frames[0]):
            return []
        keys = []
        cache = self._cache
        for frame in frames:
            if in_app_only and not frame["in_app"]:
                continue
            raw = (
                frame.get("module"),
                frame["function"],
                frame.get("context_line"),
                frame["filename"],
                frame.get("abs_path"),
            )
            if raw in cache:
                key = cache[raw]
            else:
                key = self._key(*raw)
                if len(cache) >= _CACHE_SIZE:
                    cache.clear()
                cache[raw] = key
            if key is not None:
                keys.append(key)
        return keys

    def _key(
        self,
        module: str | None,
        function: str,
        line: str | None,
        filename: str,
        abs_path: str | None,
    ) -> FrameKey | None:
        path = abs_path or filename
        if self._javascript and _javascript_noise(function, path):
            return None
        if _noise(module or "", function, path):
            return None
        if not module and self._javascript and path.startswith(_GENERATED_MODULE_ORIGINS):
            module = generate_module(path)
        where = self._module(module, path) if module else ""
        if not where:
            where = self._filename(filename, path)
        name = self._function(function) if function else ""
        text = " ".join(line.split()) if line and self._context_lines else ""
        if len(text) > _MAX_CONTEXT_LINE:
            text = ""
        if text and self._javascript and function in _NO_FUNCTION and _url_origin(path, files=True):
            text = ""  # a URL's anonymous code: the line is all there is, and minified
        if not (where or name or text):
            return None
        return where, name, text or None

    def _filename(self, filename: str, path: str) -> str:
        if not filename or _url_origin(path, files=False):
            return ""
        base = filename.replace("\\", "/").rpartition("/")[2].lower()
        if base in ("<anonymous>", "[native code]"):
            return ""
        if self.platform == "java":
            base = _JAVASSIST.sub(r"\1<auto>", base)
        return base


def rules_for(platform: object) -> FrameRules | None:
    """The frame rules of ``platform``; None for Python and for events without a platform,
    which fingerprint.py reads as it always has."""
    if not platform or platform == "python" or not isinstance(platform, str):
        return None
    rules = _RULES.get(platform)
    if rules is None:  # a platform with no rules of its own groups as Sentry's "other"
        return _OTHER
    return rules


_GENERATED_MODULE_ORIGINS = ("http:", "https:", "webpack:", "app:")


def _url_origin(path: str, *, files: bool) -> bool:
    """Whether ``path`` is a URL (``file:`` ones only when ``files``), as Sentry tells."""
    if path.startswith(("http:", "https:", "applewebdata:", "blob:")):
        return True
    return files and path.startswith("file:")


def _lone_url_frame(frame: Mapping[str, Any]) -> bool:
    """A browser stack trace of one anonymous frame at a URL: the script's load, not code."""
    return frame["function"] in _NO_FUNCTION and _url_origin(
        str(frame.get("abs_path") or frame["filename"]), files=True
    )


def _javascript_noise(function: str, path: str) -> bool:
    name = function.rpartition(".")[2]
    return name == "eval" or name in _JS_NOISE_FUNCTIONS or path in _JS_LOW_QUALITY_PATHS


def _noise(module: str, function: str, path: str) -> bool:
    if module.startswith(_NOISE_MODULES) or module.startswith(_JVM_NOISE_MODULES):
        return True
    if (module, function) in _JVM_NOISE_CALLS or module == "newrelic":
        return True
    folders = _slashes(path).lower().split("/")[:-1]
    return any(word in folder for folder in folders for word in _TELEMETRY_FOLDERS)


def _plain_module(module: str, path: str) -> str:
    return module


def _javascript_module(module: str, path: str) -> str:
    # A "module" that is the end of the script's own path names no module at all.
    return "" if "/" in module and path.endswith(module) else module


def _java_module(module: str, path: str) -> str:
    if "$$Lambda$" in module:
        return ""
    for prefix in _JAVA_ACCESSORS:
        if module.startswith(prefix):
            return prefix
    for pattern in _JAVA_GENERATED:
        module = pattern.sub(r"\1<auto>", module)
    return module


def _plain_function(function: str) -> str:
    return function


def _javascript_function(function: str) -> str:
    # Browsers name one function differently ("Object.foo", "foo"); anonymous ones count not.
    name = function.rpartition(".")[2]
    return "" if name in _JS_ANONYMOUS or name.endswith("/<") else name


def _java_function(function: str) -> str:
    return "" if function.startswith("lambda$") else function


def _csharp_function(function: str) -> str:
    return function.split(" (", 1)[0]


def _ruby_function(function: str) -> str:
    if function.startswith("block "):
        return "block"
    return _RUBY_TEMPLATE.sub("", function)


def _php_function(function: str) -> str:
    if function.startswith(("[Anonymous", "class@anonymous\x00")):
        return ""
    if function.startswith("class@anonymous"):
        return function.rpartition("::")[2]
    return function


def _native_function(function: str) -> str:
    return "" if function in ("<redacted>", "<unknown>") else function


def _slashes(path: str) -> str:
    return path.replace("\\", "/")


def _in_namespace(module: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of the dotted ``prefixes`` or inside one."""
    return module.startswith(prefixes) or f"{module}." in prefixes


_MODULES: dict[str, Callable[[str, str], str]] = {
    "javascript": _javascript_module,
    "java": _java_module,
}
_FUNCTIONS: dict[str, Callable[[str], str]] = {
    "javascript": _javascript_function,
    "node": _javascript_function,
    "java": _java_function,
    "csharp": _csharp_function,
    "ruby": _ruby_function,
    "php": _php_function,
    "native": _native_function,
}
_RULES = {
    name: FrameRules(name)
    for name in ("javascript", "node", "java", "csharp", "go", "php", "ruby", "elixir", *_NATIVE)
}
_OTHER = FrameRules("other")
