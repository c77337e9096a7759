"""Course-assignment mode: a student version of the project and its autograder.

  python -m nanoinstruct.assignment make DIR        # the student copy + DIR/ASSIGNMENT.md
  python -m nanoinstruct.assignment grade DIR       # the points table (--json F, --junit F, --hidden)
  python -m nanoinstruct.assignment submit DIR      # DIR/submission.zip
  python -m nanoinstruct.assignment fixtures        # regenerate the fixtures from the reference

parts.py: the parts and their markers; checks.py: the checks and fixtures; grade.py: grading
with per-part isolation; handout.py: make and submit; instructor.py: expected results (never
handed out). README, "Teaching with nanoinstruct", has the whole story.
"""
