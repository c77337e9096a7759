"""What a learner meets in the first hour: --help that teaches (every script), a missing input
that names the stage and the command that makes it (every stage), a mistyped path answered
with the likely one, and checkpoints that work when copied anywhere (the tokenizer rides in
them). Scripts run with conftest.run_scripts: several in one Python process."""
import ast
import os
import shutil

import pytest
import torch

from nanoinstruct import common, tokenizer
from nanoinstruct.model import GPT, GPTConfig

from conftest import PRESET_OF, ROOT, run_scripts

SCRIPTS = ["pretrain.py", "train_sft.py", "train_rm.py", "train_ppo.py", "evaluate.py", "sample.py", "bench.py",
           "data/world/prepare.py", "data/world/collect_comparisons.py", "data/hh/prepare.py", "data/text/prepare.py"]


def source_defaults(script):
    """The keys of the script's `defaults = dict(...)` and its docstring, read with ast."""
    tree = ast.parse(open(os.path.join(ROOT, script)).read())
    call = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and [getattr(t, "id", None) for t in n.targets] == ["defaults"])
    return [kw.arg for kw in call.keywords], ast.get_docstring(tree)


def test_help_teaches_every_setting_of_every_script(tmp_path):
    results = run_scripts([(s, ["--help"], tmp_path) for s in SCRIPTS])
    for script, r in zip(SCRIPTS, results):
        assert r["code"] == 0, (script, r["stderr"][-2000:])
        keys, doc = source_defaults(script)
        text = r["stdout"]
        assert text.startswith(doc.splitlines()[0]), script      # the docstring first
        settings = text[text.index("\nsettings"):].splitlines()[1:]
        for key in keys:
            row = next((line for line in settings if f"--{key}=" in line), None)
            assert row is not None, (script, key)
            # after the `--key=default` words, the meaning: from the script's comment or SHARED_HELP
            meaning = " ".join(w for w in row.split() if not w.startswith("--"))
            assert len(meaning) >= 8, (script, key, row)


def test_help_reads_comments_not_a_second_list(tmp_path):
    """Change a comment in a copy of a script, and --help changes with it."""
    src = open(os.path.join(ROOT, "sample.py")).read()
    assert "# samples per prompt" in src
    (tmp_path / "sample.py").write_text(src.replace("# samples per prompt", "# how many answers, said otherwise"))
    help_text = common.config_help({"num_samples": 1, "seed": 1}, str(tmp_path / "sample.py"), "Doc.")
    assert help_text.startswith("Doc.\n")
    assert any("--num_samples=1" in l and "how many answers, said otherwise" in l for l in help_text.splitlines())
    assert any("--seed=1" in l and common.SHARED_HELP["seed"] in l for l in help_text.splitlines())


def tiny_run(path, scalar_head=False, tok_dir=None):
    """A tiny checkpoint as the stages save it (its tokenizer carried in it)."""
    tok_dir = tok_dir or path.parent
    os.makedirs(tok_dir, exist_ok=True)
    ranks = tokenizer.train_bpe("Human: hello there. Assistant: hi, how can I help you today? " * 20, 300)
    tok_path = str(tok_dir / "tok.tiktoken")
    tokenizer.save_ranks(ranks, tok_path)
    enc, spec = common.load_tokenizer(tok_path, None)
    model = GPT(GPTConfig(block_size=64, vocab_size=enc.n_vocab, n_layer=1, n_head=2, n_embd=16,
                          scalar_head=scalar_head), verbose=False)
    common.save_run(str(path), {"tokenizer": tok_path}, model, step=0, tokenizer=spec)
    return enc


def test_missing_input_names_the_stage_and_the_command(tmp_path):
    """Each stage run in an empty directory, before anything it needs exists."""
    cases = [("pretrain.py", [], "stage 0 (pretraining)", "python data/world/prepare.py"),
             ("train_sft.py", [], "stage 1 (SFT)", "python pretrain.py"),
             ("data/world/collect_comparisons.py", [], "the comparison collection", "python train_sft.py"),
             ("train_rm.py", [], "stage 2 (reward model)", "python train_sft.py"),
             ("train_ppo.py", [], "stage 3 (PPO)", "python train_sft.py"),
             ("evaluate.py", [], "the evaluation", "python pretrain.py"),
             ("sample.py", ["--prompt=hi"], "sample.py", "python train_sft.py")]
    # and with its model there, each data file missing in turn (run.sh's layout: OUT/world)
    run = tmp_path / "run"
    tiny_run(run / "sft")
    world = run / "world"
    cases += [("train_rm.py", [f"--init_from={run / 'sft'}", f"--train_file={world / 'comparisons_train.jsonl'}"],
               "stage 2 (reward model)", f"python data/world/collect_comparisons.py --out_dir={world}"),
              ("train_sft.py", [f"--init_from={run / 'sft'}", f"--train_file={world / 'demos_train.jsonl'}"],
               "stage 1 (SFT)", f"python data/world/prepare.py --out_dir={world}")]
    results = run_scripts([(s, a, tmp_path) for s, a, _, _ in cases])
    for (script, _, stage, command), r in zip(cases, results):
        assert r["code"] != 0, script
        err = r["stderr"]
        assert "Traceback" not in err and err.startswith("error: "), (script, err)
        assert stage in err and f"`{command}`" in err, (script, err)
        # the whole pipeline, where the missing file is one run.sh makes (not data/world: the stages' defaults)
        assert ("bash run.sh" in err) == (script != "pretrain.py"), (script, err)
    assert f"bash run.sh {run}`" in results[-1]["stderr"]     # the whole pipeline into that OUT


def test_a_mistyped_path_gets_the_likely_one(tmp_path):
    tiny_run(tmp_path / "sft")
    tiny_run(tmp_path / "rm", scalar_head=True)
    cases = [("train_rm.py", [f"--init_from={tmp_path / 'sfft'}"], f"Did you mean {tmp_path / 'sft'}?"),
             ("sample.py", [f"--ckpt={tmp_path}", "--prompt=hi"], f"Did you mean {tmp_path / 'rm'} or {tmp_path / 'sft'}?"),
             # PPO against a language model: load_model would give it a random reward head
             ("train_ppo.py", [f"--init_from={tmp_path / 'sft'}", f"--reward_model={tmp_path / 'sft'}"],
              f"not a reward model (stage 2, train_rm.py, writes those: its checkpoint has a reward head); "
              f"did you mean {tmp_path / 'rm'}?")]
    for (script, _, want), r in zip(cases, run_scripts([(s, a, tmp_path) for s, a, _ in cases])):
        assert r["code"] != 0 and want in r["stderr"], (script, r["stderr"])


def test_checkpoints_work_copied_anywhere(micro, tmp_path):
    """Copy the micro run's checkpoints to a new place, make the tokenizer path in their config
    unreachable, and run sample.py, a stage and evaluate.py on the copies from another directory."""
    out, _ = micro
    copy = tmp_path / "elsewhere"
    for run in ("base", "sft", "rm", "ppo", "ppo_ptx"):
        os.makedirs(copy / run)
        shutil.copy(out / run / "ckpt.pt", copy / run / "ckpt.pt")
    ckpt = torch.load(copy / "sft" / "ckpt.pt", weights_only=True)    # the DESIGN.md contract holds
    named = os.path.join(out.parent, ckpt["config"]["tokenizer"])     # run.sh ran from the copy's root
    assert os.path.exists(named) and ckpt["tokenizer"]["ranks"]
    world = tmp_path / "world"
    shutil.copytree(out / "world", world)
    os.remove(world / "tokenizer.tiktoken")                            # nothing to find on disk
    hidden = named
    os.rename(hidden, str(hidden) + ".hidden")
    try:
        jobs = [("sample.py", [f"--ckpt={copy / 'ppo_ptx'}", "--prompt=How do I feed the Bellor?"], tmp_path),
                ("train_rm.py", [f"--config={os.path.join(ROOT, PRESET_OF['train_rm.py'])}", f"--init_from={copy / 'sft'}",
                                 f"--out_dir={tmp_path / 'rm2'}", f"--train_file={world / 'comparisons_train.jsonl'}",
                                 f"--val_file={world / 'comparisons_val.jsonl'}", f"--norm_file={world / 'demos_train.jsonl'}",
                                 "--max_train=4"], tmp_path),
                ("evaluate.py", [f"--config={os.path.join(ROOT, PRESET_OF['evaluate.py'])}", f"--out={copy}", "--policies=sft,ppo",
                                 f"--prompts_file={world / 'prompts_eval.jsonl'}", f"--val_bin={world / 'val.bin'}",
                                 f"--benchmark_file={world / 'benchmark.jsonl'}", "--max_prompts=4", "--temperatures=", "--best_of=0"],
                 tmp_path)]
        results = run_scripts(jobs)
    finally:
        os.rename(str(hidden) + ".hidden", hidden)
    for (script, _, _), r in zip(jobs, results):
        assert r["code"] == 0, (script, r["stderr"][-3000:])
    assert "--- sample 1" in results[0]["stdout"]
    rm2 = torch.load(tmp_path / "rm2" / "ckpt.pt", weights_only=True)
    assert rm2["tokenizer"] == ckpt["tokenizer"]                        # passed on to the next stage
    assert (copy / "eval" / "report.json").exists()
