"""Inside the sandbox: read the grader's source, sample and item; call grade(sample, item); answer.

Run with `python -I` (no PYTHON* variables, no user site), as its own file, not a module of
Tunery's, which it must not import. The answer is one line starting with the token the parent sent,
so what the grader prints can't pass for it.
"""

import json
import math
import sys
import traceback


def main() -> None:
    request = json.loads(sys.stdin.read())
    token = request["token"]
    try:
        scope = {"__name__": "grader"}
        exec(compile(request["source"], "grader.py", "exec"), scope)  # the point of the sandbox
        grade = scope.get("grade")
        if not callable(grade):
            raise NameError("the grader's source defines no grade(sample, item) function")
        reward = float(grade(request["sample"], request["item"]))
        if not math.isfinite(reward):
            raise ValueError(f"grade() returned {reward}, not a finite number")
        answer = {"reward": reward}
    except MemoryError:
        answer = {"error": "MemoryError: the python grader went over its memory limit"}
    except BaseException as error:
        frames = traceback.extract_tb(error.__traceback__)
        where = next(
            (f" (grader.py line {f.lineno})" for f in reversed(frames) if f.filename == "grader.py"), ""
        )
        answer = {"error": f"{type(error).__name__}: {error}{where}"}
    sys.stdout.write("\n" + token + json.dumps(answer) + "\n")
    sys.stdout.flush()


main()
