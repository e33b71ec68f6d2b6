"""No SQL text in site/wxlogin/store/ is ever built from values: values only travel as ``%s`` parameters.

Why this matters more than usual: aiomysql always connects with ``CLIENT_MULTI_STATEMENTS``, and the
login sends several statements per packet on purpose (store/db.py's ``Cursor``: ``START TRANSACTION``
with the first statement, deferred writes with ``COMMIT``). A value pasted into SQL text would then be
not only an injection but a stacked query. So every statement handed to ``execute``, ``executemany``,
``defer``, ``query`` or ``mogrify`` must be, statically: a string literal; an f-string or ``+`` over such
parts; or a name for a module constant (or a loop over one). A module constant is a module-level
assignment whose expression names only literals, other module constants (also imported ones), builtins
and its own comprehension variables: it is computed at import, before any request or setting exists.
The escaping of the parameters themselves is PyMySQL's (``Cursor.mogrify``), tested by its authors.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

STORE = Path(__file__).resolve().parents[2] / "site" / "wxlogin" / "store"
SQL_METHODS = {"execute", "executemany", "defer", "query", "mogrify"}
# (module, function): why its SQL may hold a non-constant part. Keep this list short and each reason exact.
EXEMPT = {
    # The database name comes from settings: config.py's _database_name admits only [A-Za-z0-9_$] names, and
    # it is the operator's own file, read before any request exists.
    ("migrations.py", "create_database"),
}
# Cursor's own plumbing joins statements that were each checked where they were written.
MECHANISM = {("db.py", "Cursor")}


def module_constants(tree: ast.Module, imported: dict[str, set[str]]) -> set[str]:
    """Names bound at module level to expressions over literals and other module constants only.

    A class defined in the module counts too (``Migration(...)`` records built from literals): its code is
    in the module and the check sees its calls.
    """
    names = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wxlogin.store."):
            source = imported.get(node.module.rsplit(".", 1)[1], set())
            names.update(alias.asname or alias.name for alias in node.names if alias.name in source)
    changed = True
    while changed:  # a constant may be defined from constants defined above it
        changed = False
        for node in tree.body:
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            for target in targets:
                if isinstance(target, ast.Name) and target.id not in names and _import_time(value, names):
                    names.add(target.id)
                    changed = True
    return names


def _import_time(value: ast.expr | None, constants: set[str]) -> bool:
    if value is None:
        return False
    bound = {n.id for n in ast.walk(value) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return all(
        node.id in constants or node.id in bound or hasattr(builtins, node.id)
        for node in ast.walk(value) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    )


def constant_sql(node: ast.expr, constants: set[str]) -> bool:
    """Whether an expression at a call site is SQL text without any value in it."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return all(
            constant_sql(part.value, constants) if isinstance(part, ast.FormattedValue) else True
            for part in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return constant_sql(node.left, constants) and constant_sql(node.right, constants)
    if isinstance(node, ast.Name):
        return node.id in constants
    if isinstance(node, ast.Attribute):  # a field of a constant (migration.statements)
        return constant_sql(node.value, constants)
    return False


def violations(source: str, filename: str, imported: dict[str, set[str]] | None = None) -> list[str]:
    """Every call of an SQL method whose statement is not constant SQL, as 'file:line function'."""
    tree = ast.parse(source)
    constants = module_constants(tree, imported or {})
    found: list[str] = []

    def visit(node: ast.AST, owner: str, local: set[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if owner == "" or isinstance(node, ast.ClassDef):
                owner = node.name
            local = set(local)
        looped = isinstance(node, (ast.For, ast.AsyncFor)) and isinstance(node.target, ast.Name)
        if looped and constant_sql(node.iter, constants | local):
            local = local | {node.target.id}
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS
                and (filename, owner) not in EXEMPT | MECHANISM):
            statement = node.args[0] if node.args else None
            if statement is None or not constant_sql(statement, constants | local):
                found.append(f"{filename}:{node.lineno} {owner}")
        for child in ast.iter_child_nodes(node):
            visit(child, owner, local)

    visit(tree, "", set())
    return found


def store_modules() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(STORE.glob("*.py"))}


def test_no_store_sql_is_built_from_values():
    sources = store_modules()
    imported = {name.removesuffix(".py"): module_constants(ast.parse(text), {}) for name, text in sources.items()}
    found = [v for name, text in sources.items() for v in violations(text, name, imported)]
    assert found == [], "SQL text built from something other than module constants (use %s parameters)"


def test_the_check_sees_the_statements_it_is_meant_to():
    calls = sum(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in SQL_METHODS
        for text in store_modules().values() for n in ast.walk(ast.parse(text))
    )
    assert calls > 100  # the store's statements, not an empty walk
    assert "USER_COLUMNS" in module_constants(ast.parse(store_modules()["users.py"]), {})
    assert "HIT" in module_constants(ast.parse(store_modules()["ratelimits.py"]), {})


BAD = {
    "f-string over a parameter": 'async def f(cur, name):\n'
                                 '    await cur.execute(f"SELECT * FROM t WHERE n = \'{name}\'")\n',
    "% formatting": 'async def f(cur, n):\n    await cur.execute("SELECT %d" % n)\n',
    ".format": 'async def f(cur, n):\n    await cur.execute("SELECT {}".format(n))\n',
    "concatenation": 'async def f(cur, n):\n    cur.defer("DELETE FROM t WHERE n = " + n)\n',
    "a local variable": 'async def f(cur, n):\n    q = f"SELECT {n}"\n    await cur.execute(q, ())\n',
    "a module name bound to a call on a setting": 'import os\nQ = os.environ["Q"]\nasync def f(cur):\n'
                                                  '    await cur.execute(Q)\n',
    "a loop over a parameter": 'async def f(cur, names):\n    for n in names:\n        await cur.execute(n)\n',
    "a class from elsewhere": 'from x import Settings\nQ = Settings.load().sql\nasync def f(cur):\n'
                              '    await cur.execute(Q)\n',
    "no statement at all": 'async def f(cur, **kw):\n    await cur.execute(**kw)\n',
}
GOOD = (
    'C = "id, name"\nD = ", ".join(f"t.{c}" for c in C.split(", "))\nasync def f(cur, n):\n'
    '    await cur.execute(f"SELECT {D} FROM t WHERE n = %s " "LIMIT 1", (n,))\n'
    '    cur.defer("UPDATE t SET n = %s", (n,))\n'
)


def test_the_check_catches_values_in_sql():
    for case, source in BAD.items():
        assert violations(source, "example.py"), case
    assert violations(GOOD, "example.py") == []


def test_every_exemption_is_still_needed(monkeypatch):
    exempt = set(EXEMPT)
    monkeypatch.setattr(__import__(__name__), "EXEMPT", set())
    sources = store_modules()
    imported = {name.removesuffix(".py"): module_constants(ast.parse(text), {}) for name, text in sources.items()}
    without = {tuple(v.split(" ")) for name, text in sources.items() for v in violations(text, name, imported)}
    assert exempt and exempt <= {(site.split(":")[0], owner) for site, owner in without}
