"""The shipped _core.pyi stub names exactly the public API of the built extension."""
import ast
from pathlib import Path

import cpuformer
from cpuformer import _core


def _stub_names():
    stub = Path(cpuformer.__file__).with_name("_core.pyi")
    assert stub.exists(), "cpuformer/_core.pyi is missing from the package"
    tree = ast.parse(stub.read_text())
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")}


def test_stub_matches_extension():
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert _stub_names() == public, "regenerate with tools/regen_stub.sh"


def test_ops_exports_every_public_op():
    from cpuformer import ops

    public = {name for name in dir(_core) if not name.startswith("_")}
    public -= {"get_num_threads", "set_num_threads"}  # package-level settings, not ops
    assert set(ops.__all__) == public
