"""The shape of the house (docs/ARCHITECTURE.md): arrows between apps go one way, no import
circle inside an app (function-level imports included), apps never import the project package,
no product module over 350 lines."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ["hosting", "mailqueue", "reports", "api"]
# Who may import whom (besides itself): hosting ← mailqueue ← reports, api.
ALLOWED = {
    "hosting": set(),
    "mailqueue": {"hosting"},
    "reports": {"hosting", "mailqueue"},
    "api": {"hosting", "mailqueue"},
}
MAX_LINES = 350


def product_modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield app, path


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every module imported anywhere in the file, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from mailqueue import tasks` imports the module mailqueue.tasks.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_apps_import_only_to_their_left_and_never_the_project():
    wrong = []
    for app, path in product_modules():
        for name in imported_modules(path):
            top = name.split(".")[0]
            if top == "portal" or (top in APPS and top != app and top not in ALLOWED[app]):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


@pytest.mark.parametrize("app", APPS)
def test_no_import_circle_inside_an_app(app):
    modules = {module_name(path): path for app_name, path in product_modules() if app_name == app}
    graph = {
        name: {dep for dep in imported_modules(path) if dep in modules and dep != name}
        for name, path in modules.items()
    }
    # Packages' __init__ re-exporting their own submodules are not circles.
    circles = []
    state: dict[str, str] = {}

    def visit(name, trail):
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                circles.append(" → ".join([*trail[trail.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_no_product_module_is_over_350_lines():
    long = [
        f"{path.relative_to(ROOT)}: {count}"
        for _app, path in product_modules()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert long == []
