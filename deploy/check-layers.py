#!/usr/bin/env python3
"""Checks that pipeline/src follows its documented layering.

The table of modules in pipeline/src/lib.rs's documentation (rows `//! | layer | [`module`] |
... |`) gives the order of the layers (the data path: source, stream, operators, sinks, query,
api, app); every `pub mod` must be in it. A module may import only modules
declared before it. An import of a later module is reported as pointing up the order, and
any import cycle between top-level modules is reported with its path.

An import is any `crate::NAME` path in code (comments are skipped), including the grouped
form `use crate::{a, b::c}`. `cargo-modules` can draw this graph, but it neither knows our
order nor builds in the minutes CI has, so this short script does the check.

Usage: check-layers.py [SRC_DIR]      (default: pipeline/src)
       check-layers.py --self-test    (proves the check fails on a cycle and an upward import)
"""

import os
import re
import sys
import tempfile

MODULE_LINE = re.compile(r"^\s*pub\s+mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)
TABLE_ROW = re.compile(r"^//!\s*\|[^|\n]*\|\s*\[`([a-z_][a-z0-9_]*)`\]", re.M)
CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
GROUPED_USE = re.compile(r"\bcrate::\{([^}]*)\}", re.S)


def layers(src):
    """The documented order, and the declared modules missing from it."""
    with open(os.path.join(src, "lib.rs"), encoding="utf-8") as lib:
        text = lib.read()
    order = TABLE_ROW.findall(text)
    return order, sorted(set(MODULE_LINE.findall(text)) - set(order))


def code_without_comments(text):
    # Line comments (and doc comments) only: intra-doc links are not dependencies.
    return "\n".join(line.split("//", 1)[0] if "//" in line else line for line in text.splitlines())


def imports(src, modules):
    """{module: {imported module: first file:line that imports it}}"""
    found = {module: {} for module in modules}
    for module in modules:
        paths = []
        if os.path.isfile(os.path.join(src, module + ".rs")):
            paths.append(os.path.join(src, module + ".rs"))
        for folder, _, files in os.walk(os.path.join(src, module)):
            paths += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".rs")]
        for path in paths:
            with open(path, encoding="utf-8") as file:
                lines = code_without_comments(file.read()).splitlines()
            for number, line in enumerate(lines, 1):
                names = CRATE_PATH.findall(line)
                for group in GROUPED_USE.findall(line):
                    names += re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group)
                for name in names:
                    if name in modules and name != module:
                        where = f"{os.path.relpath(path, src)}:{number}"
                        found[module].setdefault(name, where)
    return found


def cycles(graph):
    """Every elementary cycle found by depth-first search, each once."""
    seen, result = set(), []

    def visit(node, path):
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycle = path[path.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    result.append(cycle)
            elif len(path) < len(graph):
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    return result


def check(src):
    modules, undocumented = layers(src)
    if not modules:
        return [f"no table of modules in {src}/lib.rs's documentation"]
    if undocumented:
        return [f"{src}/lib.rs declares {', '.join(undocumented)} but its table of layers "
                f"does not list them"]
    graph = imports(src, modules)
    position = {module: i for i, module in enumerate(modules)}
    problems = []
    for module in modules:
        for imported, where in sorted(graph[module].items()):
            if position[imported] > position[module]:
                problems.append(
                    f"{where}: `{module}` imports `{imported}`, which comes after it in lib.rs "
                    f"(the order of the layers)"
                )
    for cycle in cycles(graph):
        steps = " -> ".join(cycle)
        evidence = "; ".join(f"{a} -> {b} at {graph[a][b]}" for a, b in zip(cycle, cycle[1:]))
        problems.append(f"import cycle {steps} ({evidence})")
    return problems


def self_test():
    def tree(files):
        root = tempfile.mkdtemp(prefix="check-layers-")
        for name, text in files.items():
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as file:
                file.write(text)
        return root

    lib = ("//! | source | [`source`] |\n//! | stream | [`stream`] | x |\n//! | app | [`app`] |\n"
           "pub mod app;\npub mod source;\npub mod stream;\n")
    clean = tree({"lib.rs": lib, "source.rs": "", "stream/mod.rs": "use crate::source::X;\n",
                  "app.rs": "use crate::{source, stream::Y};\n// crate::app in a comment\n"})
    upward = tree({"lib.rs": lib, "source.rs": "fn f() { crate::stream::run(); }\n",
                   "stream/mod.rs": "", "app.rs": ""})
    cyclic = tree({"lib.rs": lib, "source.rs": "", "stream/mod.rs": "use crate::app::Z;\n",
                   "app.rs": "use crate::{stream::Y};\n"})
    assert check(clean) == [], check(clean)
    assert any("`source` imports `stream`" in p for p in check(upward)), check(upward)
    assert any(p.startswith("import cycle") for p in check(cyclic)), check(cyclic)
    missing = tree({"lib.rs": lib + "pub mod extra;\n", "source.rs": "", "stream/mod.rs": "",
                    "app.rs": "", "extra.rs": ""})
    assert any("does not list them" in p for p in check(missing)), check(missing)
    print("check-layers self-test: a clean tree passes; an upward import, a cycle and an "
          "undocumented module fail")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    src = sys.argv[1] if len(sys.argv) > 1 else "pipeline/src"
    problems = check(src)
    for problem in problems:
        print(f"check-layers: {problem}", file=sys.stderr)
    if problems:
        print(f"check-layers: {len(problems)} problem(s); the order is the table of modules in "
              f"{src}/lib.rs (see ARCHITECTURE.md)", file=sys.stderr)
        return 1
    print(f"check-layers: {len(layers(src)[0])} modules, no cycle, no import up the order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
