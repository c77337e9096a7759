"""scripts/gpu_check.sh is run on a lent GPU, rarely and briefly: check here that what it runs
still exists (the stage flags it passes) and that its helper works end to end on CPU."""
import ast
import json
import os
import re
import subprocess
import sys

from conftest import ROOT

SCRIPTS = os.path.join(ROOT, "scripts")


def config_keys(path):
    """The keys of a script's `defaults = dict(...)`, read without running it."""
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "defaults":
            return {kw.arg for kw in node.value.keywords}
    raise AssertionError(f"{path}: no defaults = dict(...)")


def test_gpu_check_passes_only_known_flags():
    sh = open(os.path.join(SCRIPTS, "gpu_check.sh")).read()
    assert subprocess.run(["bash", "-n", os.path.join(SCRIPTS, "gpu_check.sh")]).returncode == 0
    common = set(re.findall(r"--(\w+)=", re.search(r"common=\((.*)\)", sh).group(1)))
    for script in ("train_sft.py", "train_rm.py", "train_ppo.py", "bench.py"):
        cmd = sh[sh.index(script):].split("\nrun ")[0].split("\n\n")[0]    # its (continued) command line
        flags = set(re.findall(r"--(\w+)=", cmd)) | (common if script != "bench.py" else set())
        missing = flags - config_keys(os.path.join(ROOT, script)) - {"config"}
        assert not missing, f"{script} has no {missing}"


def test_gpu_check_stage_helper_on_cpu(tmp_path):
    helper = os.path.join(SCRIPTS, "gpu_check.py")
    subprocess.run([sys.executable, helper, "data", str(tmp_path), "--n_layer=1", "--n_head=2", "--n_embd=32",
                    "--vocab_size=300", "--block_size=640", "--n_demos=32", "--n_comparisons=8", "--n_prompts=8",
                    "--ptx_tokens=5000"], check=True, capture_output=True, cwd=ROOT)
    r = subprocess.run([sys.executable, helper, "stage", "sft", str(tmp_path / "sft.json"), "train_sft.py",
                        "--config=configs/gpt2_hh_sft.py", "--device=cpu", "--dtype=float32", "--compile=False",
                        f"--tokenizer={tmp_path}/bytes.tiktoken", f"--init_from={tmp_path}/base",
                        f"--out_dir={tmp_path}/sft", f"--train_file={tmp_path}/demos_train.jsonl",
                        f"--val_file={tmp_path}/demos_val.jsonl", "--epochs=1", "--batch_size=16",
                        "--eval_interval=100000", "--n_samples=0", "--log_interval=1"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rec = json.load(open(tmp_path / "sft.json"))
    assert rec["stage"] == "sft" and rec["steps"] == 2 and rec["tok_per_s"] > 0
    subprocess.run([sys.executable, helper, "summary", str(tmp_path / "all.json"), str(tmp_path / "sft.json")],
                   check=True, capture_output=True, cwd=ROOT)
    assert json.load(open(tmp_path / "all.json"))["stages"] == [rec]
