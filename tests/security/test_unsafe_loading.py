"""No code runs from a file: the pipeline and the DAGs never unpickle, eval or exec.

An AST scan over pipeline/, dags/ and scripts/ forbids pickle / dill / cloudpickle /
marshal / shelve loading, joblib.load, pandas' read_pickle, numpy.load with
allow_pickle=True, torch.load without weights_only=True, yaml.load / full_load /
unsafe_load (yaml.safe_load only), and the eval and exec builtins. Calls are resolved
through import aliases (``from pickle import loads as l``). The settings YAML is read by
pydantic-settings with yaml.safe_load; model weights are safetensors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("pipeline", "dags", "scripts")
UNPICKLERS = ("pickle", "_pickle", "cPickle", "dill", "cloudpickle", "marshal")
FORBIDDEN = {
    **{f"{module}.{name}": "unpickles (runs code from the file)" for module in UNPICKLERS
       for name in ("load", "loads", "Unpickler")},
    "shelve.open": "unpickles (runs code from the file)",
    "joblib.load": "unpickles (runs code from the file)",
    "pandas.read_pickle": "unpickles (runs code from the file)",
    "yaml.load": "yaml.load can build Python objects: use yaml.safe_load",
    "yaml.full_load": "yaml.full_load can build Python objects: use yaml.safe_load",
    "yaml.unsafe_load": "yaml.unsafe_load builds Python objects: use yaml.safe_load",
    "yaml.load_all": "use yaml.safe_load_all",
    "eval": "eval runs text as code",
    "exec": "exec runs text as code",
}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name, from the module's imports (``import numpy as np``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:  # "import a.b" binds a; "import a.b as c" binds c to a.b
                top = alias.name.split(".")[0]
                names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def unsafe_calls(source: str, filename: str = "<code>") -> list[str]:
    """Every unsafe loading call in ``source``: 'file:line: call: why'."""
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        if name is None:
            continue
        name = name.replace("pd.", "pandas.", 1) if name.startswith("pd.") else name
        why = FORBIDDEN.get(name)
        if why is None and name.endswith(".read_pickle"):
            why = "unpickles (runs code from the file)"
        if name in ("torch.load", "torch.serialization.load") and not _keyword_is_true(node, "weights_only"):
            why = "torch.load without weights_only=True unpickles arbitrary objects"
        if name in ("numpy.load", "np.load") and any(k.arg == "allow_pickle" for k in node.keywords) \
                and not any(k.arg == "allow_pickle" and isinstance(k.value, ast.Constant) and k.value.value is False
                            for k in node.keywords):
            why = "numpy.load with allow_pickle unpickles"
        if name in ("eval", "exec") and name in aliases:  # a local function of that name, not the builtin
            why = None
        if why:
            found.append(f"{filename}:{node.lineno}: {name}: {why}")
    return found


def python_files() -> list[Path]:
    return sorted(p for folder in SCANNED if (ROOT / folder).is_dir() for p in (ROOT / folder).rglob("*.py"))


def test_the_pipeline_and_dags_never_load_code_from_files():
    files = python_files()
    assert any(p.parent.name == "pipeline" for p in files) and any(p.parent.name == "dags" for p in files)
    offenders = [hit for path in files for hit in unsafe_calls(path.read_text(), str(path.relative_to(ROOT)))]
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize("code", [
    "import pickle\npickle.load(open('x', 'rb'))",
    "import pickle as p\np.loads(b'')",
    "from pickle import loads as undo\nundo(b'')",
    "import joblib\njoblib.load('m.joblib')",
    "import pandas as pd\npd.read_pickle('x.pkl')",
    "import torch\ntorch.load('c.pt')",
    "import torch\ntorch.load('c.pt', weights_only=False)",
    "from torch import load\nload('c.pt', map_location='cpu')",
    "import yaml\nyaml.load(open('c.yaml'), Loader=yaml.Loader)",
    "import yaml\nyaml.unsafe_load('a: 1')",
    "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
    "eval('1 + 1')",
    "exec('x = 1')",
    "import cloudpickle\ncloudpickle.loads(b'')",
])
def test_the_scan_catches_each_kind_of_unsafe_load(code):
    assert len(unsafe_calls(code)) == 1, code


@pytest.mark.parametrize("code", [
    "import torch\ntorch.load('c.pt', map_location='cpu', weights_only=True)",
    "import yaml\nyaml.safe_load('a: 1')",
    "import numpy as np\nnp.load('a.npy')",
    "model.eval()",  # a torch module's eval mode, not the builtin
    "import json\njson.loads('{}')",
])
def test_the_scan_lets_safe_loads_through(code):
    assert unsafe_calls(code) == [], code


def test_a_checkpoint_is_read_with_weights_only_and_keeps_its_rng_state(tmp_path):
    """The training checkpoint (model, optimizer, scheduler, RNG states) loads under
    weights_only=True and restores the random streams exactly; a file holding anything
    else (a pickled object, as a tampered lake could hold) is refused, not run."""
    import io
    import pickle
    import random

    import numpy as np
    import torch

    from pipeline.lake import Lake
    from pipeline.training.core import Checkpointer, _rng_state, _set_rng_state

    lake = Lake(tmp_path.as_uri())
    checkpoint = Checkpointer(lake, lake.uri("checkpoint.pt"))
    weights = torch.nn.Linear(2, 2).state_dict()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.normal()  # a cached gaussian is part of numpy's state too
    checkpoint.save({"rng": _rng_state(), "model": weights})
    expected = (random.random(), np.random.normal(), torch.rand(3))
    _set_rng_state(checkpoint.load()["rng"])
    restored = (random.random(), np.random.normal(), torch.rand(3))
    assert expected[:2] == restored[:2] and torch.equal(expected[2], restored[2])

    class Payload:
        def __reduce__(self):  # noqa: ANN204 - what a malicious checkpoint would carry
            return (Path(tmp_path / "pwned").touch, ())

    buffer = io.BytesIO()
    torch.save({"model": Payload()}, buffer, pickle_module=pickle)
    lake.write_bytes(checkpoint.uri, buffer.getvalue())
    with pytest.raises(RuntimeError, match="holds more than tensors and plain values.*remove it"):
        checkpoint.load()
    assert not (tmp_path / "pwned").exists()
