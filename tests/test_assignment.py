"""The course-assignment mode (nanoinstruct/assignment): the part checks themselves, and the
instructor's contract: the reference gets full points, the student copy gets 0 and still works,
holds no solution line, and one re-inserted part earns exactly its points; the fixtures
regenerate from the reference (bit for bit on the machine that wrote them, within float32 rounding
on another CPU).

In a student copy, `python -m pytest -q tests/test_assignment.py -k <part>` runs that part's
checks on the student's own code; the instructor's tests skip there."""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest

from nanoinstruct import model, rlhf
from nanoinstruct.assignment import checks, grade as G, handout, parts as P

from conftest import ROOT

STUDENT_COPY = os.path.exists(os.path.join(ROOT, handout.MANIFEST))
reference_only = pytest.mark.skipif(STUDENT_COPY, reason="the instructor's test: needs the reference solution")
MODULES = {"nanoinstruct/rlhf.py": rlhf, "nanoinstruct/model.py": model}
ALL = [p["name"] for p in P.PARTS]
CHECKS = [c for name in ALL for c in checks.CHECKS[name]]


@pytest.mark.parametrize("c", CHECKS, ids=[f"{c.part}-{c.name}" for c in CHECKS])
def test_part(c):
    """One check of one part, on this checkout's own code (the public fixtures; hidden ones too where present)."""
    sets = ["public"] + (["hidden"] if os.path.exists(checks.path_of("hidden")) else [])
    _, passed, message = checks.run_check(c, MODULES[P.BY_NAME[c.part]["file"]], sets)
    assert passed, message


def grade_cli(*args, timeout=3600):
    r = subprocess.run([sys.executable, "-m", "nanoinstruct.assignment", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout)
    return r


def fill(src_root, dst_root, fill_parts=(), edit=None):
    """A minimal submission in dst_root: the copy's marked files, with the reference body put back
    into `fill_parts`, and edit(part) -> lines for others."""
    for rel in sorted({P.BY_NAME[n]["file"] for n in ALL}):
        text = open(os.path.join(src_root, rel)).read()
        ref = open(os.path.join(ROOT, rel)).read()
        for part in P.regions(text):
            if part in fill_parts:
                text = P.replace_body(text, part, P.body(ref, part))
            elif edit and edit(part):
                text = P.replace_body(text, part, edit(part))
        os.makedirs(os.path.dirname(os.path.join(dst_root, rel)), exist_ok=True)
        open(os.path.join(dst_root, rel), "w").write(text)
    return dst_root


def points(results):
    return {name: r["points"] for name, r in results["parts"].items()}


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    if STUDENT_COPY:
        pytest.skip("the instructor's test: needs the reference solution")
    d = tmp_path_factory.mktemp("handout")
    info = handout.make(str(d / "student"))
    return d / "student", info


@reference_only
def test_markers_match_the_parts():
    """Every part is marked exactly once, in the file parts.py names, around a real body."""
    seen = handout.check_reference(ROOT, handout.repo_files(ROOT))
    assert sorted(seen) == sorted(ALL)
    for p in P.PARTS:
        lines = P.body(open(os.path.join(ROOT, p["file"])).read(), p["name"])
        assert lines and not P.is_stub(lines), p["name"]
    assert sum(p["points"] for p in P.PARTS) == 100
    for name in ALL:   # a part's points are its checks' points
        assert sum(c.points for c in checks.CHECKS[name]) == P.BY_NAME[name]["points"], name


@reference_only
def test_grade_reference_full_points(tmp_path):
    r = grade_cli("grade", ".", "--hidden", "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"))
    assert r.returncode == 0, r.stderr
    assert "| **total** | **100** | **100** | |" in r.stdout
    res = json.load(open(tmp_path / "r.json"))
    assert res["total"] == res["max"] == 100 and res["hidden"] is True
    assert {n: (v["points"], v["max"]) for n, v in res["parts"].items()} == {p["name"]: (p["points"],) * 2 for p in P.PARTS}
    suites = ET.parse(tmp_path / "r.xml").getroot()
    assert suites.get("failures") == "0" and [s.get("name") for s in suites] == ALL


def test_copy_scores_zero_on_every_part(copy):
    d, info = copy
    assert info["parts"] == ALL
    res = G.grade(str(d), ALL)
    assert res["total"] == 0 and res["max"] == 100
    for name, r in res["parts"].items():
        assert r["isolated"] and all(t["message"].startswith(f"not implemented: {name}: ") for t in r["tests"]), name


def test_copy_holds_no_solution_line(copy):
    """No line of a solution body appears in any file of the copy (lines that also occur in the
    reference outside every solution body, such as `with torch.no_grad():`, give nothing away)."""
    d, _ = copy
    files = handout.repo_files(ROOT)
    solution, elsewhere = set(), set()
    for f in files:
        try:
            text = open(os.path.join(ROOT, f), encoding="utf-8").read()
        except UnicodeDecodeError:
            continue
        inside = set()
        for part, (b, e, _) in (P.regions(text, f).items() if f.endswith(".py") else ()):
            inside |= set(range(b + 1, e))
        for i, line in enumerate(text.split("\n")):
            s = line.split("  #")[0].strip()
            if s and not s.startswith("#"):
                (solution if i in inside else elsewhere).add(s)
    solution -= elsewhere
    assert len(solution) > 40
    leaks = []
    for dirpath, _, names in os.walk(d):
        for n in names:
            blob = open(os.path.join(dirpath, n), "rb").read()
            leaks += [(n, s) for s in solution if s.encode() in blob]
    assert not leaks, leaks[:5]
    assert not os.path.exists(d / "nanoinstruct/assignment/fixtures/hidden.npz")
    assert not os.path.exists(d / "nanoinstruct/assignment/instructor.py")
    assert not os.path.exists(d / ".git")


def test_copy_is_the_reference_outside_the_bodies(copy):
    """Putting every reference body back gives the reference byte for byte; every other file is identical."""
    d, _ = copy
    for f in handout.repo_files(ROOT):
        if f in handout.NOT_HANDED_OUT:
            continue
        ref = open(os.path.join(ROOT, f), "rb").read()
        mine = open(d / f, "rb").read()
        if f in {p["file"] for p in P.PARTS}:
            text, ref_text = mine.decode(), ref.decode()
            assert P.is_stub(P.body(text, "gae" if f.endswith("rlhf.py") else "attention"))
            for part in P.regions(text):
                text = P.replace_body(text, part, P.body(ref_text, part))
            mine = text.encode()
        assert mine == ref, f
    assert os.access(d / "run.sh", os.X_OK)


def test_copy_imports_and_unrelated_tests_pass(copy):
    """In the copy: every module imports, the tests that need no part pass, and a part's own test
    fails with its NotImplementedError."""
    d, _ = copy
    script = ("import sys, pytest\n"
              "import nanoinstruct.rlhf, nanoinstruct.model, nanoinstruct.common, nanoinstruct.data, "
              "nanoinstruct.tokenizer, nanoinstruct.world, nanoinstruct.assignment.checks\n"
              "a = pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/test_configs.py', 'tests/test_common.py', "
              "'-k', 'config or cosine or optimizer or chat or jsonl'])\n"
              "b = pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/test_assignment.py', '-k', 'whiten'])\n"
              "print('RESULT', int(a), int(b))\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=d, capture_output=True, text=True, timeout=3600,
                       env={**os.environ, "PYTHONPATH": str(d)})
    assert "RESULT 0 1" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "not implemented: whiten: " in r.stdout and "skipped" in r.stdout   # the instructor's tests skip there
    for script in ("train_sft.py", "train_rm.py", "train_ppo.py", "pretrain.py", "evaluate.py", "sample.py"):
        compile(open(d / script).read(), script, "exec")


@reference_only
@pytest.mark.parametrize("part", ALL)
def test_reinserting_one_part_gives_exactly_its_points(copy, tmp_path, part):
    d, _ = copy
    res = G.grade(fill(str(d), str(tmp_path), [part]), ALL)
    assert points(res) == {n: (P.BY_NAME[n]["points"] if n == part else 0) for n in ALL}


@reference_only
def test_isolation_a_broken_part_costs_only_its_own_points(copy, tmp_path):
    """GAE done; the value loss a syntax error, whiten wrong: GAE keeps its 14 points (the other
    bodies of rlhf.py come from the reference while GAE is graded)."""
    d, _ = copy
    edit = {"value_loss": ["    return (("], "whiten": ["    return x"]}.get
    res = G.grade(fill(str(d), str(tmp_path), ["gae", "attention"], edit), ALL)
    pts = points(res)
    assert pts["gae"] == 14 and pts["attention"] == 15 and pts["value_loss"] == 0
    assert 0 <= pts["whiten"] < 6 and res["total"] == 29 + pts["whiten"]
    assert all("SyntaxError" in t["message"] for t in res["parts"]["value_loss"]["tests"])


@reference_only
def test_choose_parts_and_the_handout(tmp_path):
    info = handout.make(str(tmp_path / "hw"), ["whiten", "gae"], notes=str(tmp_path / "notes.md"))
    assert info["parts"] == ["gae", "whiten"]   # the paper's order, whatever the order asked
    text = open(tmp_path / "hw/nanoinstruct/rlhf.py").read()
    assert sorted(P.regions(text)) == ["gae", "whiten"] and "BEGIN SOLUTION" not in open(tmp_path / "hw/nanoinstruct/model.py").read()
    assert P.body(open(os.path.join(ROOT, "nanoinstruct/rlhf.py")).read(), "value_loss")[0] in text   # not handed out: kept
    res = G.grade(str(tmp_path / "hw"), handout.read_manifest(str(tmp_path / "hw"))["parts"])
    assert points(res) == {"gae": 0, "whiten": 0} and res["max"] == 20
    md = open(tmp_path / "hw/ASSIGNMENT.md").read()
    assert md.index("### 1. gae (14 points)") < md.index("### 2. whiten (6 points)") and "### 3." not in md
    assert "delta_t = r_t + gamma * V_{t+1} - V_t" in md                          # the docstring's equation
    assert "`python -m pytest -q tests/test_assignment.py -k gae`" in md and "## Experiments" in md
    from nanoinstruct.assignment.instructor import EXPERIMENTS
    notes = open(tmp_path / "notes.md").read()
    for e in EXPERIMENTS:   # the expected results go to the instructor only
        assert e["task"] in md and e["expected"] not in md and e["expected"] in notes


def test_full_handout_lists_every_part_in_order(copy):
    d, _ = copy
    md = open(d / "ASSIGNMENT.md").read()
    at = [md.index(f"### {i}. {p['name']} ({p['points']} points)") for i, p in enumerate(P.PARTS, 1)]
    assert at == sorted(at) and "100 points in all" in md


@reference_only
def test_submit_packs_the_students_files_and_grades_as_a_zip(tmp_path):
    d = tmp_path / "hw"
    handout.make(str(d), ["gae", "ptx_loss"], notes=str(tmp_path / "notes.md"))
    fill(str(d), str(d), ["gae"])
    (d / "REPORT.md").write_text("PPO raised the gold score by ...\n")
    out, files = handout.submit(str(d))
    assert files == [".assignment.json", "REPORT.md", "nanoinstruct/rlhf.py"]
    assert sorted(zipfile.ZipFile(out).namelist()) == files
    assert handout.submit(str(d), str(tmp_path / "again.zip"))[0] and \
        open(out, "rb").read() == open(tmp_path / "again.zip", "rb").read()   # deterministic
    unpacked = handout.unpack(out, str(tmp_path / "unpacked"))
    assert points(G.grade(unpacked, ["gae", "ptx_loss"])) == {"gae": 14, "ptx_loss": 0}


@reference_only
def test_grader_survives_a_part_that_hangs(tmp_path):
    """A body that never returns: its part gets 0 ("timed out"), the next part is still graded."""
    d = tmp_path / "hw"
    handout.make(str(d), ["gae", "whiten"], notes=str(tmp_path / "notes.md"))
    fill(str(d), str(d), ["whiten"], edit={"gae": ["    while True:", "        pass"]}.get)
    r = grade_cli("grade", str(d), "--timeout", "3", "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    res = json.load(open(tmp_path / "r.json"))
    assert points(res) == {"gae": 0, "whiten": 6}
    assert all("timed out" in t["message"] for t in res["parts"]["gae"]["tests"])


@reference_only
def test_fixtures_regenerate(tmp_path):
    for name in checks.SETS:
        new = checks.generate(name, str(tmp_path))
        again = checks.generate(name, str(tmp_path / "again"))
        assert open(new, "rb").read() == open(again, "rb").read(), name    # on one machine: bit for bit
        assert checks.regeneration_drift(name, new) == [], name          # against the committed file
        with zipfile.ZipFile(new) as z:   # tensors only: .npy members, no pickles
            assert all(n.endswith(".npy") for n in z.namelist())


@reference_only
def test_regeneration_drift_catches_a_changed_reference(tmp_path):
    """float32 rounding passes; an output moved by a fifth of a student's tolerance, an input
    moved at all, or an array gone does not."""
    def variant(change):
        arrays = {f"{kind}:{part}:{k}": v for part, d in checks.load_npz("public").items()
                  for kind, kv in d.items() for k, v in kv.items()}
        change(arrays)
        p = str(tmp_path / f"v{len(os.listdir(tmp_path))}.npz")
        checks.save_npz(p, arrays)
        return checks.regeneration_drift("public", p)

    def ulps(a):
        a["out:ptx_loss:loss"] = np.float64(np.float32(a["out:ptx_loss:loss"]) * np.float32(1 + 2 ** -22))

    def off(a):
        a["out:ptx_loss:loss"] = a["out:ptx_loss:loss"] * (1 + 2 * checks.DRIFT * checks.RTOL)

    def moved_input(a):
        a["in:gae:rewards"] = a["in:gae:rewards"] + np.float32(1e-7)

    assert variant(lambda a: None) == [] and variant(ulps) == []
    assert "out:ptx_loss:loss" in variant(off)[0]
    assert "in:gae:rewards: inputs differ" in variant(moved_input)[0]
    assert "in one file only" in variant(lambda a: a.pop("out:gae:advantages"))[0]


@reference_only
def test_make_refuses_a_non_empty_dir_and_a_student_copy(copy, tmp_path):
    d, _ = copy
    with pytest.raises(FileExistsError):
        handout.make(str(d))
    with pytest.raises(ValueError, match="no solution"):
        handout.make(str(tmp_path / "again"), root=str(d))
    shutil.rmtree(tmp_path / "again", ignore_errors=True)


def test_instructor_files_and_other_handouts_stay_out(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / handout.MANIFEST).write_text("{}")
    (tmp_path / "old" / "a.py").write_text("")
    for f in ("hw-INSTRUCTOR.md", "nanoinstruct/assignment/instructor.py", "nanoinstruct/assignment/fixtures/hidden.npz",
              "old/a.py", "new/x.py", "hw/submission.zip"):
        assert not handout.handed_out(str(tmp_path), f, str(tmp_path / "new")), f
    assert handout.handed_out(str(tmp_path), "nanoinstruct/rlhf.py", str(tmp_path / "new"))
