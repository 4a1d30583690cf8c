"""Every reason an answer can carry has its Chinese text, and the texts fit their templates."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

from web.reasons import CATALOG_PATH, localize

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("gridmap", "video", "web", "geodata")


def _template(node: ast.expr) -> str | None:
    """Return the source's text of a message, ``{}`` for each value put in; None if not literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return left + right if left is not None and right is not None else None
    return None


def answered_error_names() -> set[str]:
    """Return the names of the exceptions web.errors answers with a status and their reason."""
    from web import create_app
    from web import errors as web_errors

    create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})  # registers the rest
    answered = tuple(web_errors.STATUS_BY_ERROR)
    names = {"_deny"}  # web.auth's refusal helper raises Forbidden with its argument
    for room in ROOMS:
        package = importlib.import_module(room)
        for info in pkgutil.walk_packages(package.__path__, room + "."):
            if ".migrations" not in info.name:
                module = importlib.import_module(info.name)
                names |= {obj.__name__ for obj in vars(module).values()
                          if inspect.isclass(obj) and issubclass(obj, answered)}
    return names


def reasons_in_source() -> dict[str, str]:
    """Return {template: where} for every literal reason of an answered exception."""
    names = answered_error_names()
    found: dict[str, str] = {}
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            if "node_modules" in path.parts or "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                # Report rows built as dicts: {"row": n, "field": f, "reason": …}.
                if isinstance(node, ast.Dict):
                    items = {k.value: v for k, v in zip(node.keys, node.values, strict=True)
                             if isinstance(k, ast.Constant)}
                    if "row" in items and "reason" in items:
                        text = _template(items["reason"])
                        if text:
                            found.setdefault(text, f"{path.relative_to(ROOT)}:{node.lineno}")
                    continue
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                # The row reports of imports: rows.fail(mask, lambda i: reason) and
                # RowError(row, column, reason) in geodata.io.
                if name in names or name == "_reject":
                    message = node.args[0]
                elif name == "fail" and len(node.args) == 2 and isinstance(node.args[1], ast.Lambda):
                    message = node.args[1].body
                elif name == "RowError" and len(node.args) == 3:
                    message = node.args[2]
                else:
                    continue
                text = _template(message)
                if text:
                    found.setdefault(text, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


@pytest.fixture(scope="module")
def catalog() -> dict[str, str]:
    return json.loads(CATALOG_PATH.read_text(encoding="utf-8"))


def test_every_reason_an_answer_can_carry_has_chinese_text(catalog):
    reasons = reasons_in_source()
    assert len(reasons) > 250  # the walk found the domain's reasons at all
    missing = {text: where for text, where in reasons.items() if text not in catalog}
    assert not missing, f"add these to {CATALOG_PATH.name}: {missing}"


def test_every_text_uses_each_value_once_and_no_other_brace(catalog):
    for english, zh in catalog.items():
        n = english.count("{}")
        assert re.search(r"[\u4e00-\u9fff]", zh), english
        assert sorted(re.findall(r"{(\d+)}", zh)) == [str(i) for i in range(n)], english
        assert zh.count("{") == n and zh.count("}") == n, english


@pytest.mark.parametrize("reason, zh", [
    ("a grid code has 15 digits", "15"),
    ("no such camera", "摄像头"),
    ("name is required", "名称"),  # a field name becomes its label
])
def test_reasons_read_in_chinese_and_stay_english_on_request(reason, zh):
    chinese = localize(reason, "zh")
    assert chinese != reason and zh in chinese and re.search(r"[\u4e00-\u9fff]", chinese)
    assert localize(reason, "en") == reason


def test_a_reason_without_an_entry_stays_as_it_is():
    assert localize("something nobody wrote down", "zh") == "something nobody wrote down"
    assert localize("", "zh") == ""


def test_what_an_upload_turned_out_to_be_reads_in_chinese():
    from geodata import io
    from web.reasons import LABELS

    kinds = {*io._FORMAT_LABELS.values(), *io._KIND_LABELS.values(),
             *(what for _, what in io._FOREIGN_MAGIC)} - {"JSON"}
    assert kinds - set(LABELS) == set()
    chinese = localize("not a spatial file: the content is a PDF document", "zh")
    assert "PDF 文档" in chinese and "document" not in chinese


@pytest.mark.parametrize("wkt", [
    "POLYGON((0 0,1 1,1 0,0 1,0 0))",  # a bow tie
    "POLYGON((0 0,2 0,2 2,0 2,0 0),(3 3,4 3,4 4,3 3))",
    "POLYGON((0 0,10 0,10 10,0 10,0 0),(1 1,9 1,9 9,1 9,1 1),(2 2,8 2,8 8,2 8,2 2))",
    "POLYGON((0 0,10 0,10 10,0 10,0 0),(0 5,5 0,10 5,5 10,0 5))",
    "MULTIPOLYGON(((0 0,10 0,10 10,0 10,0 0)),((1 1,9 1,9 9,1 9,1 1)))",
    "POLYGON((0 0,10 0,5 5,10 10,0 10,5 5,0 0))",
    "POLYGON((0 0,1 0,0 0,0 0))",
])
def test_geos_validity_reasons_read_in_chinese(wkt):
    # Grid admins redrawing boundaries see why GEOS refused a shape, where it did.
    import shapely

    from gridmap.editing import _explain_invalid

    geos = shapely.is_valid_reason(shapely.from_wkt(wkt))
    spot = geos[geos.index("[") + 1:-1]
    upload = localize(f"invalid geometry: {geos}", "zh")
    assert upload.endswith(f"（{spot}）") and not re.search("[A-Za-z]", upload), upload
    edit = localize(_explain_invalid(shapely.from_wkt(wkt)).reason, "zh")
    assert not re.search("[A-Za-z]", edit), edit
