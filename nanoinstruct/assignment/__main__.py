"""python -m nanoinstruct.assignment make DIR [--parts a,b | --skip a,b] [--force] [--notes FILE]
                                   grade DIR_OR_ZIP [--json F] [--junit F] [--hidden] [--parts a,b] [--timeout S]
                                   submit DIR [--out FILE]
                                   fixtures [--check] [--hidden_seed N]
                                   parts

make     writes the student copy into DIR and DIR/ASSIGNMENT.md; the instructor's notes beside it
grade    prints the points table; exit 0 whatever the score, 1 only when grading itself failed.
         Each part runs in a worker process with a time limit: a part that hangs or crashes the
         interpreter gets 0 and the others are still graded.
submit   packs the student's files into DIR/submission.zip (grade takes the zip as it is)
fixtures regenerates nanoinstruct/assignment/fixtures/*.npz from the reference; --check compares
         instead of writing: exit 1 unless they regenerate bit for bit, or within float32
         rounding on a CPU whose kernels round differently (checks.regeneration_drift)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from nanoinstruct.assignment import grade as G
from nanoinstruct.assignment import handout
from nanoinstruct.assignment.parts import BY_NAME, PARTS, choose


def names(s):
    return [x.strip() for x in s.split(",") if x.strip()] if s else None


def run_worker(root, parts, hidden, timeout):
    """Grade `parts` in child processes: one for all while none misbehaves; a part that times out
    or kills its process gets 0 (with why) and the rest go on in a fresh one."""
    results, todo = {}, list(parts)
    while todo:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "results.jsonl")
            cmd = [sys.executable, "-m", "nanoinstruct.assignment", "_worker", root, out, ",".join(todo)]
            proc = subprocess.Popen(cmd + (["--hidden"] if hidden else []), cwd=G.REPO, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONPATH": G.REPO + os.pathsep + os.environ.get("PYTHONPATH", "")})
            current, started, timed_out = None, time.time(), False
            while proc.poll() is None:
                time.sleep(0.05)
                lines = open(out).read().splitlines() if os.path.exists(out) else []
                begun = [ln.split(" ", 2) for ln in lines if ln.startswith("begin ")]
                if begun and begun[-1][1] != (current and current[1]):
                    current, started = begun[-1], time.time()
                if current and time.time() - started > timeout:
                    proc.kill()
                    timed_out = True
            err = proc.stderr.read()
            lines = open(out).read().splitlines() if os.path.exists(out) else []
        for ln in lines:
            if ln.startswith("{"):
                r = json.loads(ln)
                results[r["part"]] = r["result"]
            elif ln.startswith("begin "):
                current = ln.split(" ", 2)
        todo = [p for p in todo if p not in results]
        if not todo:
            break
        if current is None or current[1] in results:   # it failed outside any part: grading itself is broken
            raise RuntimeError(f"the grading worker failed (exit {proc.returncode}):\n{err[-3000:]}")
        why = f"timed out after {timeout:g} s" if timed_out else f"crashed the grader's process (exit {proc.returncode})"
        tests = [dict(name=n, points=0, max=m, passed=False, message=why) for n, m in json.loads(current[2])]
        results[current[1]] = dict(points=0, max=sum(t["max"] for t in tests), tests=tests, isolated=True)
        todo = [p for p in todo if p not in results]
    return G.summarize({p: results[p] for p in parts}, hidden)


def cmd_grade(a):
    target = os.path.abspath(a.dir)
    tmp = None
    if os.path.isfile(target):   # a submission archive
        tmp = tempfile.TemporaryDirectory()
        target = handout.unpack(target, tmp.name)
    if not os.path.isdir(target):
        raise FileNotFoundError(f"{a.dir}: no such directory or archive")
    from nanoinstruct.assignment.checks import path_of
    for name in ["public"] + (["hidden"] if a.hidden else []):
        if not os.path.exists(path_of(name)):
            raise FileNotFoundError(f"fixture set {name} is missing ({path_of(name)}); grade from the reference "
                                    "repository, or regenerate it: python -m nanoinstruct.assignment fixtures")
    manifest = handout.read_manifest(target)
    parts = choose(names(a.parts) or (manifest["parts"] if manifest else None))
    results = run_worker(target, parts, a.hidden, a.timeout)
    print(G.table(results))
    if a.json:
        G.write_json(results, a.json)
    if a.junit:
        G.write_junit(results, a.junit)
    return 0


def cmd_worker(a):
    """The child of `grade`: one line "begin PART" before each part, one JSON line after it."""
    from nanoinstruct.assignment.checks import CHECKS
    with open(a.out, "a") as f:
        for part in a.parts.split(","):
            f.write(f"begin {part} {json.dumps([[c.name, c.points] for c in CHECKS[part]])}\n")
            f.flush()
            r = G.grade_part(part, a.dir, a.hidden)
            f.write(json.dumps({"part": part, "result": r}) + "\n")
            f.flush()
    return 0


def cmd_make(a):
    parts = choose(names(a.parts), names(a.skip))
    info = handout.make(a.dir, parts, force=a.force, notes=a.notes)
    print(f"wrote {info['files']} files to {info['dest']}; parts handed out: {', '.join(info['parts'])} "
          f"({sum(BY_NAME[p]['points'] for p in info['parts'])} points); ASSIGNMENT.md there; "
          f"instructor's notes (expected results, not for students) in {info['notes']}")
    return 0


def cmd_submit(a):
    out, files = handout.submit(os.path.abspath(a.dir), a.out)
    print(f"wrote {out}: " + ", ".join(files))
    return 0


def cmd_fixtures(a):
    from nanoinstruct.assignment import checks
    if a.check:
        with tempfile.TemporaryDirectory() as tmp:
            same, bad = [], []
            for name in checks.SETS:
                new, old = checks.generate(name, tmp), checks.path_of(name)
                if not os.path.exists(old):
                    bad.append(f"{name}: {old} is missing")
                elif open(new, "rb").read() == open(old, "rb").read():
                    same.append(name)
                else:
                    bad += checks.regeneration_drift(name, new)
        for m in bad:
            print("  " + m)
        print("fixtures: " + ("differ from their regeneration beyond float32 rounding" if bad else
                              "regenerated bit for bit" if len(same) == len(checks.SETS) else
                              f"regenerated within float32 rounding ({', '.join(same) or 'none'} bit for bit)"))
        return 1 if bad else 0
    for name in checks.SETS:
        print("wrote", checks.generate(name, seed=a.hidden_seed if name == "hidden" else None))
    return 0


def cmd_parts(a):
    for p in PARTS:
        print(f"{p['name']:18} {p['points']:3} points  {p['file']}: {p['function']}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m nanoinstruct.assignment", description=__doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make", help="write the student copy")
    p.add_argument("dir")
    p.add_argument("--parts", help="comma-separated parts to hand out (default: all)")
    p.add_argument("--skip", help="comma-separated parts not to hand out")
    p.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    p.add_argument("--notes", help="the instructor's notes file (default: DIR-INSTRUCTOR.md)")
    p = sub.add_parser("grade", help="grade a copy or a submission zip")
    p.add_argument("dir")
    p.add_argument("--json")
    p.add_argument("--junit")
    p.add_argument("--hidden", action="store_true", help="also the hidden checks (other seeds and shapes)")
    p.add_argument("--parts", help="grade only these parts (default: those handed out)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds a part may run")
    p = sub.add_parser("submit", help="pack the student's files")
    p.add_argument("dir")
    p.add_argument("--out")
    p = sub.add_parser("fixtures", help="regenerate the fixtures from the reference")
    p.add_argument("--check", action="store_true")
    p.add_argument("--hidden_seed", type=int, help="another seed for the hidden set (keep it private)")
    sub.add_parser("parts", help="list the parts")
    p = sub.add_parser("_worker")
    p.add_argument("dir")
    p.add_argument("out")
    p.add_argument("parts")
    p.add_argument("--hidden", action="store_true")
    a = ap.parse_args(argv)
    fn = {"make": cmd_make, "grade": cmd_grade, "submit": cmd_submit, "fixtures": cmd_fixtures,
          "parts": cmd_parts, "_worker": cmd_worker}[a.cmd]
    try:
        return fn(a)
    except (OSError, ValueError, RuntimeError, LookupError) as e:
        print(f"nanoinstruct.assignment {a.cmd}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
