"""Grading: each part's checks on a student's copy, the part alone.

Isolation: to grade part P, the grader takes the student's file that holds P, puts the
reference body back into every *other* marked part of that file, and imports the result as a
fresh module. A student who finished GAE but not the value loss gets GAE's points, and a broken
body elsewhere (even a syntax error) costs only its own part. The reference is this package's
own source; run from a student copy (no reference there) each part runs on the student's own
code throughout, and the table says so.

Results: {"parts": {name: {"points", "max", "tests": [{"name", "points", "max", "passed",
"message"}]}}, "total", "max", "isolated", "hidden"}.
"""
import importlib.util
import json
import os
import sys
import xml.etree.ElementTree as ET

from nanoinstruct.assignment.parts import BY_NAME, body, is_stub, regions, replace_body

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def part_source(part, student_root, ref_root=REPO):
    """(source text, isolated) of the module that grades `part`: the student's file, every other
    part that the reference has a solution for restored from it."""
    rel = BY_NAME[part]["file"]
    path = os.path.join(student_root, rel)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{rel} is missing from the submission")
    text = read(path)
    found = regions(text, rel)
    if part not in found:
        raise LookupError(f"{rel}: the '# BEGIN SOLUTION {part}' / '# END SOLUTION {part}' lines are gone; "
                          f"put them back around your code")
    ref_text = read(os.path.join(ref_root, rel))
    isolated = not os.path.exists(os.path.join(ref_root, ".assignment.json"))   # a student copy has no reference
    for other in found:
        if other == part:
            continue
        ref_body = body(ref_text, other)
        if ref_body is None or is_stub(ref_body):
            isolated = False   # no reference for it here: the student's own body stays
        else:
            text = replace_body(text, other, ref_body)
    return text, isolated, path


def load_module(name, text, path):
    """Import source text as a fresh module (registered while it runs: dataclasses need that)."""
    spec = importlib.util.spec_from_loader(name, loader=None, origin=path)
    mod = importlib.util.module_from_spec(spec)
    mod.__file__ = path
    sys.modules[name] = mod
    try:
        exec(compile(text, path, "exec"), mod.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def grade_part(part, student_root, hidden=False, ref_root=REPO):
    """One part's result dict (see the module docstring), with "isolated"."""
    from nanoinstruct.assignment import checks
    tests = [dict(name=c.name, points=0, max=c.points, passed=False, message="") for c in checks.CHECKS[part]]
    result = dict(points=0, max=sum(t["max"] for t in tests), tests=tests, isolated=True)
    name = f"_nanoinstruct_graded_{part}"
    try:
        text, result["isolated"], path = part_source(part, student_root, ref_root)
        mod = load_module(name, text, path)
    except Exception as e:   # the file is missing, its markers are, or it does not import
        for t in tests:
            t["message"] = f"{type(e).__name__}: {e}"
        return result
    try:
        for t, (c, passed, message) in zip(tests, checks.run_part(part, mod, hidden)):
            t.update(points=c.points if passed else 0, passed=passed, message=message)
    finally:
        sys.modules.pop(name, None)
    result["points"] = sum(t["points"] for t in tests)
    return result


def summarize(parts_results, hidden):
    return {"parts": parts_results, "total": sum(r["points"] for r in parts_results.values()),
            "max": sum(r["max"] for r in parts_results.values()),
            "isolated": all(r.get("isolated", True) for r in parts_results.values()), "hidden": hidden}


def grade(student_root, parts, hidden=False, ref_root=REPO):
    """All given parts in this process (the CLI runs this in a worker process)."""
    return summarize({p: grade_part(p, student_root, hidden, ref_root) for p in parts}, hidden)


def table(results):
    """The points table, as Markdown."""
    lines = ["| part | points | max | failed checks |", "| --- | --- | --- | --- |"]
    for name, r in results["parts"].items():
        failed = [t for t in r["tests"] if not t["passed"]]
        if failed and all(t["message"].startswith("not implemented") for t in failed):
            note = "not implemented" if len(failed) == len(r["tests"]) else \
                "not implemented: " + ", ".join(t["name"] for t in failed)
        else:
            note = "; ".join(f"{t['name']}: {(t['message'] or 'failed').splitlines()[0][:100]}" for t in failed[:2])
            note += f"; and {len(failed) - 2} more" if len(failed) > 2 else ""
        lines.append(f"| {name} | {r['points']:g} | {r['max']:g} | {note.replace('|', '/')} |")
    lines.append(f"| **total** | **{results['total']:g}** | **{results['max']:g}** | |")
    if not results.get("isolated", True):
        lines.append("\n(no reference solution here: each part ran on your own code throughout, other parts included)")
    return "\n".join(lines)


def write_json(results, path):
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def write_junit(results, path):
    """JUnit XML: one testsuite per part, one testcase per check, points as properties."""
    root = ET.Element("testsuites", name="nanoinstruct assignment",
                      tests=str(sum(len(r["tests"]) for r in results["parts"].values())),
                      failures=str(sum(not t["passed"] for r in results["parts"].values() for t in r["tests"])))
    for name, r in results["parts"].items():
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(r["tests"])),
                              failures=str(sum(not t["passed"] for t in r["tests"])))
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="points", value=f"{r['points']:g}")
        ET.SubElement(props, "property", name="max", value=f"{r['max']:g}")
        for t in r["tests"]:
            case = ET.SubElement(suite, "testcase", classname=f"assignment.{name}", name=t["name"])
            ET.SubElement(ET.SubElement(case, "properties"), "property", name="points", value=f"{t['points']:g}/{t['max']:g}")
            if not t["passed"]:
                ET.SubElement(case, "failure", message=t["message"].splitlines()[0][:500] if t["message"] else "failed").text = t["message"]
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
