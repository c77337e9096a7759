"""What the study scripts share (overoptimization.py, habits.py, frontier.py, and the reward-model
studies rm_label_noise.py, rm_data_scale.py, rm_clean_pairs.py): running a script of this
repository as its own process, training a reward model from a run's SFT model, re-running a
finished stage with some settings changed, and sampling a policy several times per prompt with every sample scored three ways
(gold, reward model, KL to SFT). The studies read a finished `bash run.sh OUT` and write under
OUT/studies/; they never change the run itself."""
import contextlib
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import torch  # noqa: E402

from nanoinstruct import common, scoring  # noqa: E402


def arg(key, value):
    """--key=value as common.get_config parses it back (strings raw, everything else as a literal)."""
    return f"--{key}={value}" if isinstance(value, str) else f"--{key}={value!r}"


def rerun_args(run_dir, **overrides):
    """The arguments that re-run the stage that wrote run_dir, from its config.json (the resolved
    config), with `overrides` (keys it must have). With the same seed and a constant learning
    rate (PPO), a run of fewer iterations is the first part of the longer one."""
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        raise KeyError(f"{run_dir}/config.json has no {unknown}")
    return [arg(k, v) for k, v in {**cfg, **overrides}.items()]


def run(script, args, log_path, env=None):
    """python SCRIPT ARGS from the repository root (a .sh script: bash), its output into
    log_path -> wall seconds. A failure stops the study with the end of that log."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    cmd = ["bash" if script.endswith(".sh") else sys.executable, script, *args]
    shown = [f"{k}={v}" for k, v in (env or {}).items()] + ["bash" if cmd[0] == "bash" else "python", *cmd[1:]]
    print(f"$ {' '.join(shown)}\n  (log: {log_path})", flush=True)
    t0 = time.time()
    with open(log_path, "w") as f:
        r = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if r.returncode:
        sys.exit(f"{script} failed (exit {r.returncode}); the end of {log_path}:\n{open(log_path).read()[-3000:]}")
    return time.time() - t0


def train_rm(out, rm_dir, train_file, val_file, log_path, extra=()):
    """train_rm.py from the run's SFT model (OUT/sft), its rewards normalised on the run's
    demonstrations, on train_file, evaluated on val_file, into rm_dir (`extra`: more settings) ->
    its summary.json. Paths may be relative to the caller's directory: they are made absolute,
    since the script runs from the repository root."""
    out, rm_dir = os.path.abspath(out), os.path.abspath(rm_dir)
    run("train_rm.py", [f"--init_from={os.path.join(out, 'sft')}", f"--out_dir={rm_dir}",
                        f"--train_file={os.path.abspath(train_file)}", f"--val_file={os.path.abspath(val_file)}",
                        f"--norm_file={os.path.join(out, 'world', 'demos_train.jsonl')}", *extra], log_path)
    return json.load(open(os.path.join(rm_dir, "summary.json")))


def done(run_dir, **settings):
    """Whether run_dir holds a finished run with these settings (so a study that stopped can go
    on where it stopped): its summary.json exists and its config.json has these values."""
    if not os.path.exists(os.path.join(run_dir, "summary.json")):
        return False
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    return all(cfg.get(k) == v for k, v in settings.items())


def load(path, device, **overrides):
    model, ckpt = common.load_model(path, device, verbose=False, **overrides)
    return model.eval(), ckpt


def sample_scored(policy, sft, reward_model, enc, prompts, n, temperature, seed, gold_score, ppo_cfg,
                  max_new_tokens=48, batch_size=128, ctx=contextlib.nullcontext()):
    """n samples of every prompt from `policy` at `temperature` -> {"gold", "rm", "kl"}, each a
    list with one list of n floats per prompt (scoring.sample_and_score's three scores; the KL
    with pi_SFT at 1, the KL that evaluate.py reports). Sample-major (all prompts' first samples,
    then the second ones, ...), seeded."""
    gen = torch.Generator(policy.lm_head.weight.device).manual_seed(seed)
    jobs = list(range(len(prompts))) * n
    out = {k: [[] for _ in prompts] for k in ("gold", "rm", "kl")}
    for i in range(0, len(jobs), batch_size):
        chunk = jobs[i:i + batch_size]
        got = scoring.sample_and_score(policy, sft, reward_model, enc, [prompts[j] for j in chunk], temperature, gen,
                                       gold_score, ppo_cfg["no_eot_score"], max_new_tokens, 1.0, ctx)
        for k in out:
            for j, v in zip(chunk, got[k]):
                out[k][j].append(v)
    return out


def mean(xs):
    xs = list(xs)
    return sum(xs) / max(len(xs), 1)


def per_prompt_means(lists):
    return [mean(x) for x in lists]


def save_json(obj, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
