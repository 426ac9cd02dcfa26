"""The README's Python example runs as printed (with its names moved into
the test's private directory, so that it touches nothing in /dev/shm)."""

import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_the_readme_example_runs_and_prints_its_total(tmpdir_path):
    text = open(README, encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no Python example"
    code = blocks[0]
    for stem in ("jobs", "total"):
        assert f'"{stem}"' in code
        code = code.replace(f'"{stem}"', repr(os.path.join(tmpdir_path, stem)))
    script = os.path.join(tmpdir_path, "readme_example.py")
    with open(script, "w", encoding="utf-8") as f:
        f.write(code)
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "499500"
    assert sorted(os.listdir(tmpdir_path)) == ["readme_example.py"], "the example left files behind"
