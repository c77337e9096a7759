"""Every preset in configs/ names only keys its script knows, with values of the right types.
No training: each script's `defaults = dict(...)` is read with ast, never imported or run."""
import ast
import glob
import os

import pytest

from nanoinstruct.common import get_config

from conftest import MICRO_PRESETS, ROOT

# A preset's target script, by file name. A new preset needs a line in conftest.MICRO_PRESETS
# (the test fails until then); run.sh gives ppo_ptx the ppo preset.
MICRO = MICRO_PRESETS
SUFFIX = {"_sft.py": "train_sft.py", "_rm.py": "train_rm.py", "_ppo.py": "train_ppo.py"}

PRESETS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True))


def target_script(preset):
    name = os.path.basename(preset)
    if os.path.dirname(preset) == os.path.join("configs", "micro"):
        return MICRO.get(name)
    return next((script for suffix, script in SUFFIX.items() if name.endswith(suffix)), None)


def script_defaults(script):
    """The literal keyword arguments of the script's top-level `defaults = dict(...)`."""
    tree = ast.parse(open(os.path.join(ROOT, script)).read(), script)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["defaults"]
                and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "dict"):
            return {kw.arg: ast.literal_eval(kw.value) for kw in node.value.keywords}
    raise AssertionError(f"{script}: no top-level `defaults = dict(...)`")


def test_presets_found():
    assert "configs/gpt2_hh_sft.py" in PRESETS and "configs/paper_ppo.py" in PRESETS
    assert "configs/micro/sft.py" in PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_fits_its_script(preset, capsys):
    script = target_script(preset)
    assert script, f"{preset}: no target script known; add its mapping to tests/test_configs.py"
    defaults = script_defaults(script)
    try:
        cfg = get_config(defaults, ["--config=" + os.path.join(ROOT, preset)])
    except SystemExit as e:   # get_config exits with status 2 and one line on stderr
        pytest.fail(f"{preset} -> {script}: exit {e.code}: {capsys.readouterr().err.strip()}")
    assert set(cfg) == set(defaults)


def test_preset_comments_state_the_scripts_real_defaults():
    """A preset's comment "(the script's default is X)" must name the script's actual default for
    that line's key, and no preset may call a script feature unsupported that the script has
    (configs/paper_sft.py once said the App. C.3 mix was unsupported while --ptx_frac existed)."""
    import re
    checked = 0
    for preset in PRESETS:
        script = target_script(preset)
        defaults = script_defaults(script)
        key = None
        for line in open(os.path.join(ROOT, preset)):   # a comment continues the key assigned above it
            key = (re.match(r"(\w+)\s*=", line) or [None, key])[1]
            m = re.search(r"the script's default is ([\w.+-]+?)[,)]", line)
            if m:
                assert key in defaults and defaults[key] == ast.literal_eval(m[1]), (preset, line)
                checked += 1
        text = open(os.path.join(ROOT, preset)).read()
        for key in defaults:
            assert not re.search(rf"--{key}\b[^\n]*not supported|not supported[^\n]*--{key}\b", text), (preset, key)
        assert "not supported by train_sft.py" not in text, preset
    assert checked >= 2   # configs/gpt2_hh_ppo.py and configs/paper_ppo.py state the ptx_coef default
