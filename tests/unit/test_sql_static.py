"""No SQL text in site/wxlogin/store/ is ever built from values: values only travel as ``%s`` parameters.

Why this matters more than usual: aiomysql always connects with ``CLIENT_MULTI_STATEMENTS``, and the
login sends several statements per packet on purpose (store/db.py's ``Cursor``: ``START TRANSACTION``
with the first statement, deferred writes with ``COMMIT``). A value pasted into SQL text would then be
not only an injection but a stacked query. So every statement handed to ``execute``, ``executemany``,
``defer``, ``query`` or ``mogrify`` must be, statically, computed from literals only (``static``): literals;
names of module constants (also imported from another store module) and loop variables over them; f-strings,
``+``, ``%`` and ``*`` over such parts; ``"sep".join`` of them; comprehensions over them; a field of a constant
record (``migration.statements``); calls of a short allow-list of pure builtins (``SAFE_BUILTINS``) and of the
module's plain ``@dataclass`` records. No other call (``__import__``, ``open``, ``getattr``, a method), no
attribute of a class or of an import. A module constant is a name every module-level binding of which is such
an assignment: computed at import, before any request or setting exists. A function's parameter or local of
the same name hides it.
The escaping of the parameters themselves is PyMySQL's (``Cursor.mogrify``), tested by its authors.
"""

from __future__ import annotations

import ast
from collections import Counter
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


# The builtins a module constant may call: pure functions of their arguments. Anything else (``__import__``,
# ``open``, ``getattr``, ``eval``, ``input``...) could bring in a value from outside the module's text.
SAFE_BUILTINS = {"len", "str", "int", "tuple", "list", "sorted", "frozenset", "set", "range", "min", "max"}
# Operators a constant may combine parts with: concatenation, %-formatting of constants, repetition.
SAFE_OPS = (ast.Add, ast.Mod, ast.Mult)


def record_classes(tree: ast.Module) -> set[str]:
    """Classes of the module that are plain records: a ``@dataclass`` whose body holds only field declarations
    (no methods, no ``__post_init__``, no defaults that compute). Calling one builds a value from its
    arguments alone (``Migration(1, "name", (...))``); any other class may run code of its own."""
    records = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.bases or node.keywords:
            continue
        dataclass = any(
            (isinstance(d, ast.Name) and d.id == "dataclass")
            or (isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "dataclass")
            for d in node.decorator_list
        )
        fields_only = all(
            (isinstance(item, ast.AnnAssign) and (item.value is None or isinstance(item.value, ast.Constant)))
            or (isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant))  # a docstring
            for item in node.body
        )
        if dataclass and fields_only:
            records.add(node.name)
    return records


def module_constants(tree: ast.Module, imported: dict[str, set[str]]) -> set[str]:
    """Names bound at module level to expressions computed from literals only (see ``static``).

    Every binding of the name counts: a name also bound another way (a second assignment that is not static, a
    loop, ``with``, an import, ``global`` in a function) is not a constant, whichever binding comes first."""
    records = record_classes(tree)
    imported_constants: set[str] = set()
    bindings: Counter[str] = Counter()
    assigned: dict[str, list[ast.expr]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bindings[node.name] += 1
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Global, ast.Nonlocal)):
                    bindings.update(dict.fromkeys(inner.names, 1_000))  # rebound at run time: never
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            store = isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wxlogin.store.")
            source = imported.get(node.module.rsplit(".", 1)[1], set()) if store and node.module else set()
            for alias in node.names:
                name = alias.asname or alias.name.split(".")[0]
                bindings[name] += 1
                if alias.name in source:
                    imported_constants.add(name)
                    assigned.setdefault(name, [])
        else:
            bindings.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                node.target if isinstance(node, ast.AnnAssign) and node.value is not None else None)
            if isinstance(target, ast.Name) and node.value is not None:  # type: ignore[union-attr]
                assigned.setdefault(target.id, []).append(node.value)  # type: ignore[union-attr]
    # Only names whose every binding is a single-name assignment (or the import of another module's constant).
    candidates = {name: values for name, values in assigned.items()
                  if bindings[name] == len(values) + (name in imported_constants)}
    names = {name for name in imported_constants if name in candidates and not candidates[name]}
    changed = True
    while changed:  # a constant may be defined from constants defined above it
        changed = False
        for name, values in candidates.items():
            if name not in names and values and all(static(v, names, records) for v in values):
                names.add(name)
                changed = True
    return names


def static(node: ast.expr, constants: set[str], records: set[str] = frozenset()) -> bool:  # type: ignore[assignment]
    """Whether an expression is computed from literals only: literals; names of module constants; f-strings,
    ``+``, ``%`` and ``*`` over such parts; ``"sep".join`` of them; tuples, lists, sets and dicts of them;
    comprehensions over them; a field of a constant record; and calls of ``SAFE_BUILTINS`` and of the
    module's record classes. Nothing else: no other call, no attribute of a class or an import."""
    def ok(n: ast.expr, bound: set[str]) -> bool:
        return static(n, constants | bound, records)

    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return isinstance(node.ctx, ast.Load) and node.id in constants
    if isinstance(node, ast.JoinedStr):
        return all(ok(part, set()) for part in node.values)
    if isinstance(node, ast.FormattedValue):
        return ok(node.value, set()) and (node.format_spec is None or ok(node.format_spec, set()))
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, SAFE_OPS) and ok(node.left, set()) and ok(node.right, set())
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(ok(e.value if isinstance(e, ast.Starred) else e, set()) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or ok(k, set()) for k in node.keys) and all(ok(v, set()) for v in node.values)
    if isinstance(node, ast.Attribute):  # a field of a constant record (migration.statements), nothing deeper
        return isinstance(node.value, ast.Name) and node.value.id in constants
    if isinstance(node, ast.Subscript):  # an item of a constant: COLUMNS[0]
        return ok(node.value, set()) and ok(node.slice, set())
    if isinstance(node, ast.Slice):
        return all(part is None or ok(part, set()) for part in (node.lower, node.upper, node.step))
    if isinstance(node, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):
        bound: set[str] = set()
        for gen in node.generators:
            if not ok(gen.iter, bound):
                return False
            bound |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
            if not all(ok(cond, bound) for cond in gen.ifs):
                return False
        return ok(node.elt, bound)
    if isinstance(node, ast.Compare):  # only inside a comprehension's condition
        return ok(node.left, set()) and all(ok(c, set()) for c in node.comparators)
    if isinstance(node, ast.Call):
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            args_ok = False
        else:
            args_ok = all(ok(a, set()) for a in node.args) and all(ok(k.value, set()) for k in node.keywords)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "join":  # ", ".join(COLUMNS)
            return args_ok and ok(func.value, set())
        if isinstance(func, ast.Name):
            return args_ok and (func.id in SAFE_BUILTINS or func.id in records)
        return False
    return False


def constant_sql(node: ast.expr, constants: set[str]) -> bool:
    """Whether an expression at a call site is SQL text without any value in it."""
    return static(node, constants)


def trusted_in(function: ast.FunctionDef | ast.AsyncFunctionDef, outer: set[str]) -> set[str]:
    """The names a function's SQL may use: the enclosing ones it does not rebind (a parameter or a local of the
    same name hides a module constant), and its loop variables over constant SQL that it binds no other way."""
    bindings: Counter[str] = Counter()
    args = function.args
    bindings.update(a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a)
    loops: list[ast.For | ast.AsyncFor] = []
    for node in ast.walk(function):
        if node is function:
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bindings[node.id] += 1
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bindings[node.name] += 1
        elif isinstance(node, ast.alias):
            bindings[node.asname or node.name.split(".")[0]] += 1
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bindings[node.name] += 1
        elif isinstance(node, ast.arg):  # a nested function's or lambda's parameter
            bindings[node.arg] += 1
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bindings.update(dict.fromkeys(node.names, 1_000))
        if isinstance(node, (ast.For, ast.AsyncFor)) and isinstance(node.target, ast.Name):
            loops.append(node)
    trusted = outer - set(bindings)
    changed = True
    while changed:  # a loop may run over another loop's variable
        changed = False
        for name in {loop.target.id for loop in loops} - trusted:  # type: ignore[union-attr]
            mine = [loop for loop in loops if loop.target.id == name]  # type: ignore[union-attr]
            if bindings[name] == len(mine) and all(static(loop.iter, trusted) for loop in mine):
                trusted.add(name)
                changed = True
    return trusted


def violations(source: str, filename: str, imported: dict[str, set[str]] | None = None) -> list[str]:
    """Every call of an SQL method whose statement is not constant SQL, as 'file:line function'."""
    tree = ast.parse(source)
    constants = module_constants(tree, imported or {})
    found: list[str] = []

    def visit(node: ast.AST, owner: str, trusted: set[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and (
                owner == "" or isinstance(node, ast.ClassDef)):
            owner = node.name
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            trusted = trusted_in(node, trusted)
        elif isinstance(node, ast.Lambda):
            trusted = trusted - {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_METHODS
                and (filename, owner) not in EXEMPT | MECHANISM):
            statement = node.args[0] if node.args else None
            if statement is None or not constant_sql(statement, trusted):
                found.append(f"{filename}:{node.lineno} {owner}")
        for child in ast.iter_child_nodes(node):
            visit(child, owner, trusted)

    visit(tree, "", constants)
    return found


def store_modules() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(STORE.glob("*.py"))}


def test_no_store_sql_is_built_from_values():
    sources = store_modules()
    imported = {name.removesuffix(".py"): module_constants(ast.parse(text), {}) for name, text in sources.items()}
    found = [v for name, text in sources.items() for v in violations(text, name, imported)]
    assert found == [], f"SQL text built from something other than module constants (use %s parameters): {found}"


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
    # The shapes the first version of this check let through:
    "a builtin that imports": 'Q = __import__("os").environ["Q"]\nasync def f(cur):\n    await cur.execute(Q)\n',
    "a builtin that reads a file": 'Q = open("/etc/q").read()\nasync def f(cur):\n    await cur.execute(Q)\n',
    "getattr": 'import os\nQ = getattr(os, "environ")["Q"]\nasync def f(cur):\n    await cur.execute(Q)\n',
    "an attribute of a class of the module": 'import os\nclass K:\n    q = os.environ["Q"]\n'
                                             'Q = K.q\nasync def f(cur):\n    await cur.execute(Q)\n',
    "a class of the module with code": 'import os\nclass K:\n    def __init__(self):\n'
                                       '        self.q = os.environ["Q"]\nQ = K()\n'
                                       'async def f(cur):\n    await cur.execute(Q.q)\n',
    "a method call on a constant": 'import os\nC = "x"\nQ = C.format(os.environ)\n'
                                   'async def f(cur):\n    await cur.execute(Q)\n',
    "a constant rebound later": 'import os\nQ = "SELECT 1"\nQ = os.environ["Q"]\n'
                                'async def f(cur):\n    await cur.execute(Q)\n',
    "a constant rebound by a function": 'Q = "SELECT 1"\ndef set_q(v):\n    global Q\n    Q = v\n'
                                        'async def f(cur):\n    await cur.execute(Q)\n',
    "a parameter named like a constant": 'Q = "SELECT 1"\nasync def f(cur, Q):\n    await cur.execute(Q)\n',
    "a local named like a constant": 'Q = "SELECT 1"\nasync def f(cur, n):\n    Q = n\n'
                                     '    await cur.execute(Q)\n',
    "a loop variable also bound otherwise": 'C = ("SELECT 1",)\nasync def f(cur, n):\n    for s in C:\n'
                                            '        s = n\n        await cur.execute(s)\n',
    "a loop over a constant's rebinding": 'C = ("SELECT 1",)\nasync def f(cur, n):\n    for C in n:\n'
                                          '        await cur.execute(C)\n',
    "% over a parameter in a constant": 'async def f(cur, n):\n    await cur.execute("SELECT %s FROM t" % (n,))\n',
    "join over a parameter": 'async def f(cur, names):\n    await cur.execute(", ".join(names))\n',
}
GOOD = (
    'from dataclasses import dataclass\n'
    '@dataclass(frozen=True)\nclass M:\n    """A record."""\n    n: int\n    statements: tuple[str, ...]\n'
    'C = ("id", "name")\nD = ", ".join(f"t.{c}" for c in C if c != "x")\nN = len(C)\nE = "%s, " * N\n'
    'P = "SELECT %s FROM t" % D\nMS = (M(1, ("SELECT 1", f"SELECT {D}")),)\n'
    'async def f(cur, n):\n'
    '    await cur.execute(f"SELECT {D} FROM t WHERE n = %s " "LIMIT 1", (n,))\n'
    '    await cur.execute(P + " WHERE n IN (" + ", ".join(["%s"] * N) + ")", C)\n'
    '    cur.defer("UPDATE t SET n = %s", (n,))\n'
    '    for m in MS:\n        for s in m.statements:\n            await cur.execute(s)\n'
    '    for s in ("DELETE FROM a WHERE n = %s", "DELETE FROM b WHERE n = %s"):\n'
    '        await cur.execute(s, (n,))\n'
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
