"""appdeploy.collect_modules: errors name the user's files, never the work folder's copies."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from tiramisu_tasks import appdeploy
from tiramisu_tasks.errors import TiramisuError


def test_an_invalid_module_from_wat_names_the_wat_file(tmp_path):
    wat = tmp_path / "app" / "x.wat"
    wat.parent.mkdir()
    wat.write_text('(module (func (export "_start") (i32.add (i32.const 1) (i64.const 2)) drop))')
    work = tmp_path / "work"
    work.mkdir()
    spec = SimpleNamespace(name="x", modules={"x": wat.resolve()})
    with pytest.raises(TiramisuError) as err:
        appdeploy.collect_modules(spec, work)
    assert str(err.value).startswith(f"{wat.resolve()}: not a valid module: ")
    assert str(work) not in str(err.value) and err.value.code == 4


def test_unparsable_wat_names_the_wat_file(tmp_path):
    wat = tmp_path / "y.wat"
    wat.write_text("(module (func")
    spec = SimpleNamespace(name="y", modules={"y": Path(wat)})
    with pytest.raises(TiramisuError, match=f"^{wat}: invalid WAT"):
        appdeploy.collect_modules(spec, tmp_path)
