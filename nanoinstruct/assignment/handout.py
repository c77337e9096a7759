"""`make` (the student copy and its ASSIGNMENT.md) and `submit` (the student's files, one archive).

The copy is every file of the repository (git's tracked and untracked-but-not-ignored files; no
.git, so no history holding the solution) with each handed-out body replaced by its
NotImplementedError, the markers of the parts not handed out removed (their reference bodies
stay), and neither the hidden fixtures nor the instructor's notes. DIR/.assignment.json records
the parts handed out and a hash of every file, which `submit` compares against.
"""
import ast
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import zipfile

from nanoinstruct.assignment.parts import BY_NAME, PARTS, body, is_stub, regions, replace_body, stub_lines, strip_part

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANIFEST = ".assignment.json"
# what a handout must not contain
NOT_HANDED_OUT = {"nanoinstruct/assignment/fixtures/hidden.npz", "nanoinstruct/assignment/instructor.py"}
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", "venv"}
REPORT = ("REPORT.md", "report")   # the student's write-up, always submitted


def ignored(rel, patterns, is_dir=False):
    """Whether .gitignore patterns (in order, last match wins, `!` re-includes) ignore path rel."""
    out = False
    for pat in patterns:
        neg, pat = pat.startswith("!"), pat.lstrip("!")
        dir_only, pat = pat.endswith("/"), pat.rstrip("/")
        if dir_only and not is_dir:
            continue
        target = rel if "/" in pat else os.path.basename(rel)
        if fnmatch.fnmatch(target, pat.lstrip("/")):
            out = not neg
    return out


def repo_files(root):
    """Relative paths of the repository's files: git's tracked and untracked-but-not-ignored files
    when root is a work tree, else a walk that honours root/.gitignore and skips caches."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout.decode()
        files = [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        gi = os.path.join(root, ".gitignore")
        patterns = [ln.strip() for ln in open(gi)] if os.path.exists(gi) else []
        patterns = [p for p in patterns if p and not p.startswith("#")]
        files = []
        for d, dirs, names in os.walk(root):
            rel = os.path.relpath(d, root)
            rel = "" if rel == "." else rel + "/"
            dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not ignored(rel + x, patterns, True))
            files += [rel + n for n in names if not ignored(rel + n, patterns)]
    return sorted(f for f in files if os.path.isfile(os.path.join(root, f)))


def handed_out(root, f, dest):
    """Whether file f of the repository goes into the copy: not the hidden fixtures or the
    instructor's notes (instructor.py, any *-INSTRUCTOR.md), not a submission, and nothing inside
    dest or inside another handout (a directory holding a manifest)."""
    if f in NOT_HANDED_OUT or f.endswith("-INSTRUCTOR.md") or os.path.basename(f) == "submission.zip":
        return False
    if (os.path.abspath(os.path.join(root, f)) + os.sep).startswith(os.path.abspath(dest) + os.sep):
        return False
    d = os.path.dirname(f)
    while d:
        if os.path.exists(os.path.join(root, d, MANIFEST)):
            return False
        d = os.path.dirname(d)
    return True


def sha(data):
    return hashlib.sha256(data).hexdigest()


def marked_files(root, files):
    return [f for f in files if f.endswith(".py") and b"# BEGIN SOLUTION" in open(os.path.join(root, f), "rb").read()]


def check_reference(root, files):
    """The markers in the source, against the list of parts: every part marked once, with a body."""
    seen = {}
    for f in marked_files(root, files):
        text = open(os.path.join(root, f), encoding="utf-8").read()
        for part in regions(text, f):
            if part not in BY_NAME:
                raise ValueError(f"{f}: marker for unknown part {part!r} (add it to nanoinstruct/assignment/parts.py)")
            if part in seen:
                raise ValueError(f"part {part} is marked in {seen[part]} and in {f}")
            if BY_NAME[part]["file"] != f:
                raise ValueError(f"part {part} is marked in {f}, but parts.py says {BY_NAME[part]['file']}")
            seen[part] = f
    missing = [p["name"] for p in PARTS if p["name"] not in seen]
    if missing:
        raise ValueError(f"no solution markers for part(s) {', '.join(missing)}")
    return seen


def docstring(text, function):
    """The docstring of `function` ("name" or "Class.method") in a module's source."""
    scope = ast.parse(text).body
    *classes, name = function.split(".")
    for c in classes:
        scope = next(n for n in scope if isinstance(n, ast.ClassDef) and n.name == c).body
    fn = next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.get_docstring(fn) or ""


def handout_text(chosen, root=REPO):
    """DIR/ASSIGNMENT.md: the parts in the paper's order with points, equation, what to write and
    the test to run, then the experiments (no expected results: those are the instructor's)."""
    from nanoinstruct.assignment.instructor import EXPERIMENTS
    parts = [BY_NAME[n] for n in chosen]
    total = sum(p["points"] for p in parts)
    out = [
        "# Assignment: InstructGPT from scratch, in nanoinstruct",
        "",
        f"You write {len(parts)} pieces of the InstructGPT recipe (Ouyang et al. 2022, \"Training language models "
        "to follow instructions with human feedback\") inside a codebase that runs the whole of it: a GPT, "
        "supervised fine-tuning, a K-wise reward model, and PPO with a per-token KL penalty, a value model "
        f"and the pretraining mix (PPO-ptx). {total} points in all.",
        "",
        "## How to work",
        "",
        "- Each part is one function body that now raises `NotImplementedError(\"<part>: ...\")`. The docstring "
        "above it states the equation and the tensor shapes; the rest of the project (the stage scripts, "
        "the data, the tests) is complete and calls your functions.",
        "- Write your code between the `# BEGIN SOLUTION <part>` and `# END SOLUTION <part>` lines and keep "
        "those two lines: the grader finds your code by them. You may add helpers elsewhere in the file.",
        "- Helpers you may call: `masked_mean`, `masked_var`, `logprobs_from_logits`, `pairs_from_ranking` "
        "(nanoinstruct/rlhf.py); `position_ids`, `KVCache.update`, `GPT.scores` (nanoinstruct/model.py).",
        "- Test one part: `python -m pytest -q tests/test_assignment.py -k <part>`. Your points table: "
        "`python -m nanoinstruct.assignment grade .`",
        "- The grader compares your functions with the reference solution's outputs on stored inputs "
        "(nanoinstruct/assignment/fixtures/public.npz) and with hand-computed cases; tolerances are "
        "1e-6 + 1e-5 |expected| (float64 inputs; 1e-5 + 1e-4 |expected| for the reward model's float32 head). "
        "The instructor also runs hidden checks with other seeds and shapes, and grades each part "
        "with the reference solution in every other part, so each part earns its points on its own.",
        "- Submit: `python -m nanoinstruct.assignment submit .` writes `submission.zip` (your changed files, "
        "REPORT.md and report/).",
        "",
        "## Parts",
        "",
        "| # | part | points | where | test |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, p in enumerate(parts, 1):
        out.append(f"| {i} | {p['name']} | {p['points']} | `{p['file']}`: `{p['function']}` | "
                   f"`python -m pytest -q tests/test_assignment.py -k {p['name']}` |")
    for i, p in enumerate(parts, 1):
        text = open(os.path.join(root, p["file"]), encoding="utf-8").read()
        doc = docstring(text, p["function"])
        out += ["", f"### {i}. {p['name']} ({p['points']} points)", "",
                f"`{p['file']}`, `{p['function']}`; {p['paper']}.", "",
                f"What to write: {p['hint']}.", ""]
        if p.get("equation"):
            out += ["Equation: " + p["equation"] + ".", ""]
        if doc:
            out += ["The docstring (the equation and the shapes):", "", "```", doc, "```", ""]
        out.append(f"Test: `python -m pytest -q tests/test_assignment.py -k {p['name']}`")
    out += ["", "## Experiments, once every part passes", "",
            "Write what you ran, the numbers and what you make of them in `REPORT.md`.", ""]
    for i, e in enumerate(EXPERIMENTS, 1):
        out += [f"{i}. **{e['title']}**. {e['task']}", ""]
    return "\n".join(out).rstrip() + "\n"


def instructor_text(chosen):
    from nanoinstruct.assignment.instructor import EXPERIMENTS
    out = ["# Instructor notes (not for students)", "",
           f"Parts handed out: {', '.join(chosen)}.", "",
           "Grade: `python -m nanoinstruct.assignment grade DIR_OR_ZIP [--hidden] [--json F] [--junit F]`, "
           "run from the reference repository.", "", "## Expected results of the experiments", ""]
    for i, e in enumerate(EXPERIMENTS, 1):
        out += [f"{i}. **{e['title']}**. {e['expected']}", ""]
    return "\n".join(out).rstrip() + "\n"


def make(dest, parts=None, root=REPO, force=False, notes=None):
    """Write the student copy into dest. parts: the names handed out (default all), paper order.
    notes: where the instructor's notes go (default: beside dest, DEST-INSTRUCTOR.md)."""
    dest = os.path.abspath(dest)
    chosen = [p["name"] for p in PARTS if parts is None or p["name"] in parts]
    if os.path.exists(dest) and os.listdir(dest) and not force:
        raise FileExistsError(f"{dest} exists and is not empty (--force writes over it)")
    files = [f for f in repo_files(root) if handed_out(root, f, dest)]
    for part, f in check_reference(root, files).items():
        if is_stub(body(open(os.path.join(root, f), encoding="utf-8").read(), part)):
            raise ValueError(f"{f}: part {part} has no solution here; make a handout from the reference")
    hashes = {}
    for f in files:
        src, dst = os.path.join(root, f), os.path.join(dest, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        data = open(src, "rb").read()
        if f.endswith(".py") and b"# BEGIN SOLUTION" in data:
            text = data.decode("utf-8")
            for part, (_, _, indent) in regions(text, f).items():
                text = replace_body(text, part, stub_lines(part, indent)) if part in chosen else strip_part(text, part)
            data = text.encode("utf-8")
        with open(dst, "wb") as fh:
            fh.write(data)
        shutil.copymode(src, dst)
        hashes[f] = sha(data)
    with open(os.path.join(dest, "ASSIGNMENT.md"), "w") as fh:
        fh.write(handout_text(chosen, root))
    manifest = {"parts": chosen, "points": {n: BY_NAME[n]["points"] for n in chosen}, "files": hashes}
    with open(os.path.join(dest, MANIFEST), "w") as fh:
        json.dump(manifest, fh, indent=1)
    notes = notes or dest.rstrip(os.sep) + "-INSTRUCTOR.md"
    with open(notes, "w") as fh:
        fh.write(instructor_text(chosen))
    return {"dest": dest, "parts": chosen, "files": len(files), "notes": notes}


def read_manifest(root):
    p = os.path.join(root, MANIFEST)
    return json.load(open(p)) if os.path.exists(p) else None


def submission_files(root):
    """What `submit` packs: the files that hold handed-out parts, every other handout file the
    student changed, REPORT.md and report/, and the manifest."""
    manifest = read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"{root} is not a handout made by `make` (no {MANIFEST})")
    files = {BY_NAME[n]["file"] for n in manifest["parts"]} | {MANIFEST}
    for f, h in manifest["files"].items():
        p = os.path.join(root, f)
        if os.path.isfile(p) and sha(open(p, "rb").read()) != h:
            files.add(f)
    for r in REPORT:
        p = os.path.join(root, r)
        if os.path.isfile(p):
            files.add(r)
        elif os.path.isdir(p):
            files |= {os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(p) for n in ns}
    return sorted(f for f in files if os.path.isfile(os.path.join(root, f)))


def submit(root, out=None):
    """Pack the student's files into one zip (default DIR/submission.zip), deterministically."""
    out = out or os.path.join(root, "submission.zip")
    files = submission_files(root)
    with zipfile.ZipFile(out + ".tmp", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            info = zipfile.ZipInfo(f, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, open(os.path.join(root, f), "rb").read())
    os.replace(out + ".tmp", out)
    return out, files


def unpack(archive, dest):
    """Extract a submission zip into dest, refusing paths that leave it."""
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            target = os.path.abspath(os.path.join(dest, name))
            if not target.startswith(os.path.abspath(dest) + os.sep):
                raise ValueError(f"{archive}: unsafe path {name!r}")
        zf.extractall(dest)
    return dest
