"""The documentation stays true and short: docs/cli.md is exactly what docs/make_cli_reference.py
generates from the click commands (so the reference cannot drift from the options), and
README.md stays a user's manual: at most 300 lines, no commit hashes, its first command block
unchanged, and every docs/ page it links to present. Fast: nothing here loads TensorFlow."""
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 300
# A commit hash as one would paste it: 7 to 40 lowercase hex characters with at least one digit
# and one letter, so that neither a number ("3276048") nor a word ("facade") counts. (A hash of
# digits alone cannot be told from a number; the rare one is left to review.)
COMMIT_HASH = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
# The README's first code block: the set-up command and the test command, kept byte for byte
# (tests/test_kinetics.py runs what the first reads from the data folder).
FIRST_BLOCK = ("bash\n"
               "apt-get update && apt-get install -y python3-venv libgl1 libglib2.0-0 && python3 -m venv .venv && "
               ".venv/bin/pip install -e . && LIVE_MODELS=../shared/models .venv/bin/live --file "
               "../shared/clips/arm_wrestling.mp4\n"
               "bash .ci/run\n")


def cli_reference_module():
    spec = importlib.util.spec_from_file_location("make_cli_reference", ROOT / "docs" / "make_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_generated_from_the_commands():
    module = cli_reference_module()
    generated = module.reference()
    assert "## `live`" in generated and "### `train fit`" in generated and "--weights DIR" in generated
    assert (ROOT / "docs" / "cli.md").read_bytes() == generated.encode("utf-8"), \
        "docs/cli.md is out of date: run python docs/make_cli_reference.py"


def test_readme_is_a_short_manual_without_commit_hashes():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; at most {MAX_README_LINES}"
    hashes = [(number, match.group()) for number, line in enumerate(lines, 1) for match in COMMIT_HASH.finditer(line)]
    assert not hashes, f"README.md names commits (line, hash): {hashes}; history goes to docs/decisions.md"
    assert text.split("```", 2)[1] == FIRST_BLOCK


def test_the_hash_rule_matches_hashes_and_nothing_else():
    for found in ("commit 512b6cb", "at 83d6d96 and", "(ea5585c)", "d4b672c0a1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6"):
        assert COMMIT_HASH.search(found), found
    for prose in ("1234567 frames", "a facade", "deadbeef", "the 0.9285714 accuracy", "ema:0.5", "abc123"):
        assert not COMMIT_HASH.search(prose), prose


def test_readme_links_to_docs_that_exist():
    text = README.read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[^)#\s]+)", text))
    assert "docs/cli.md" in linked
    assert not [path for path in linked if not (ROOT / path).exists()], linked
