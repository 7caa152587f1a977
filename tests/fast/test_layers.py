"""The house rules, read from the source (no module is imported): the workflow never imports the
guardians or the improvement cycle; they watch it, through agents.signals and tasks sent by name."""

import ast
from pathlib import Path

BASE = Path(__file__).resolve().parents[2]


def imported_apps(app: str, base: Path = BASE) -> dict:
    """{module path: top-level packages it imports, at module level or inside a function}."""
    found = {}
    for path in (base / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(base))] = names
    return found


def test_no_module_of_agents_imports_guardians_or_improvement():
    offenders = {path: names & {"guardians", "improvement"} for path, names in imported_apps("agents").items()}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_rule_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "agents" / "sneaky.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from guardians import recovery\n")
    assert imported_apps("agents", tmp_path) == {"agents/sneaky.py": {"guardians"}}


def test_guardians_and_improvement_depend_on_agents_one_way():
    for app in ("guardians", "improvement"):
        assert any("agents" in names for names in imported_apps(app).values())
    assert not any("improvement" in names for names in imported_apps("guardians").values())
