"""Where the code lives, as it must stay: the batch seam and the job launcher load
without the ORM (run as they run, in fresh interpreters)."""

import ast
import subprocess
import sys
from pathlib import Path

import ijpweb.batch

RUNNER = Path(ijpweb.batch.__file__).with_name("runner.py")


def _python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)


def test_the_batch_seam_loads_without_sqlalchemy():
    done = _python(
        "-I", "-c", "import ijpweb.batch, sys; assert 'sqlalchemy' not in sys.modules, 'ORM loaded'"
    )
    assert done.returncode == 0, done.stderr


def test_the_job_states_load_without_sqlalchemy():
    code = (
        "import sys; from ijpweb.states import LIVE, TERMINAL, JobStatus; "
        "assert 'sqlalchemy' not in sys.modules, 'ORM loaded'; "
        "assert JobStatus.SUBMITTING in LIVE and not LIVE & TERMINAL; "
        "assert LIVE | TERMINAL == set(JobStatus)"
    )
    done = _python("-I", "-c", code)
    assert done.returncode == 0, done.stderr


def test_the_launcher_imports_only_the_standard_library():
    tree = ast.parse(RUNNER.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in runner.py, line {node.lineno}"
            modules.add(node.module.split(".")[0])
    assert modules and modules <= sys.stdlib_module_names, sorted(modules - sys.stdlib_module_names)


def test_the_launcher_runs_without_site_packages():
    """As the backends start it (python -I -S runner.py): without arguments it says how
    to call it, which it can only do once all its imports have loaded."""
    done = _python("-I", "-S", str(RUNNER))
    assert done.returncode == 2 and "usage: runner.py" in done.stderr, done.stderr
