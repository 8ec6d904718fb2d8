"""Teaching labs: challenges as data (challenge.py), the grader (grade.py), safe score formulas (formula.py),
and the labs shipped with TinyStudio (builtin/*.toml with their Markdown instructions).

    ch = load_challenge("builtin:kws64k")
    res = grade(ch, graph)        # res.to_json(): {"passed", "score", "checks": [{"name", "value", "limit", ...}]}
"""
from engine.labs.challenge import Challenge, ChallengeError, list_builtin, load_challenge, parse_challenge
from engine.labs.grade import Check, GradeResult, counted, grade

__all__ = ["Challenge", "ChallengeError", "Check", "GradeResult", "counted", "grade", "list_builtin",
           "load_challenge", "parse_challenge"]
