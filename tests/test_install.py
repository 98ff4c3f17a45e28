"""The package as users get it: a wheel (what `pip install .` builds too) and an editable install,
each in a fresh virtualenv, run from outside the project. The shipped bundles must travel with
the package: before, an installed `live` looked for site-packages/weights/kinetics600."""
import ast
import importlib.metadata
import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import CLIPS, ROOT, assert_clean_error, free_port

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

SAMPLE = CLIPS / "arm_wrestling.mp4"


def clean_env():
    """This environment without PYTHONPATH, which would put the checkout's own live first."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def run(*command, **kwargs):
    process = subprocess.run([str(part) for part in command], capture_output=True, text=True, env=clean_env(),
                             timeout=600, **kwargs)
    assert process.returncode == 0, process.stdout + process.stderr
    return process


def build_options():
    """Build with the setuptools installed here where it is new enough; otherwise pip fetches
    one (from PyPI) in an isolated build environment."""
    version = importlib.metadata.version("setuptools")
    return ["--no-build-isolation"] if int(version.split(".")[0]) >= 77 else []


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory):
    """What a clone holds, copied: a build leaves build/ and *.egg-info behind it, and a stale
    build/ could put files in the wheel that the project no longer has."""
    copy = tmp_path_factory.mktemp("project")
    shutil.copy2(ROOT / "pyproject.toml", copy)
    for folder in ("live", "training", "weights"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def virtualenv(path):
    """A fresh virtualenv that sees the packages installed here (TensorFlow and the rest, so no
    download), where this interpreter's own site-packages come after the venv's: through
    --system-site-packages, or, when the tests run in a virtualenv themselves, a .pth file."""
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", path)
    python = path / "bin" / "python"
    own = Path(run(python, "-c", "import site; print(site.getsitepackages()[0])").stdout.strip())
    outer = [*site.getsitepackages(), site.getusersitepackages()]
    (own / "outer-site.pth").write_text(
        "".join(f"import site; site.addsitedir({folder!r})\n" for folder in outer))
    return python


def pip_install(python, *arguments):
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", *arguments)


def imported_distributions():
    """The distributions behind every third-party module that live/ and training/ import."""
    modules = set()
    for file in [*(ROOT / "live").rglob("*.py"), *(ROOT / "training").rglob("*.py")]:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    modules -= {*sys.stdlib_module_names, "live", "training"}
    providers = importlib.metadata.packages_distributions()
    return {module: providers.get(module, []) for module in modules}


def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.slow
def test_wheel_runs_from_any_folder_with_its_bundles_and_declares_what_it_imports(project_copy, tmp_path,
                                                                                  cache_dir):
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *build_options(), "--wheel-dir",
        tmp_path / "dist", project_copy)
    wheel, = (tmp_path / "dist").glob("live_action-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA")))
        shipped = set(archive.namelist())
    # Every module of the packages, subpackages included (pyproject.toml lists them one by one).
    sources = {path.relative_to(ROOT).as_posix() for folder in ("live", "training") for path in (ROOT / folder).rglob("*.py")}
    assert not sources - shipped, sorted(sources - shipped)
    metadata = metadata.decode()
    declared = {normalized(re.split(r"[\s<>=!~;\[(]", line.split(":", 1)[1].strip())[0])
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    undeclared = {module: providers for module, providers in imported_distributions().items()
                  if not {normalized(provider) for provider in providers} & declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    assert "Requires-Python: >=3.11.4" in metadata  # tarfile's extractall(filter=) came in 3.11.4

    python = virtualenv(tmp_path / "venv")
    pip_install(python, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = run(python, "-c", "import live; print(live.__file__)", cwd=elsewhere).stdout.strip()
    assert located.startswith(str(tmp_path / "venv")), located
    scripts = tmp_path / "venv" / "bin"
    version = re.search(r"^Version: (\S+)$", metadata, re.MULTILINE).group(1)
    for command in ("live", "train"):
        assert run(scripts / command, "--version", cwd=elsewhere).stdout.splitlines()[0] == f"{command}, version {version}"
    process = run(scripts / "live", "--file", SAMPLE, "--no-display", "--max-frames", 60, "--jsonl", "-",
                  cwd=elsewhere)  # LIVE_MODELS is the data folder's models (tests/conftest.py)
    labels = [json.loads(line)["label"] for line in process.stdout.splitlines()]
    assert len(labels) == 60 and labels[-1] == "arm wrestling", labels[-5:]
    # No LIVE_MODELS, an empty cache and no way out (every URL through a proxy where nothing
    # listens): one line that says where to get the model, exit 2.
    closed = f"http://127.0.0.1:{free_port()}"
    offline = {**{k: v for k, v in clean_env().items() if k != "LIVE_MODELS"}, "LIVE_CACHE_DIR": str(tmp_path / "empty"),
               "http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed}
    process = subprocess.run([scripts / "live", "--file", SAMPLE, "--no-display"], cwd=elsewhere, env=offline,
                             capture_output=True, text=True, timeout=120)
    assert_clean_error(process, "MoViNet-A0-Stream", "LIVE_MODELS", "https://tfhub.dev/")
    assert process.returncode == 2


@pytest.mark.slow
def test_editable_install_finds_the_shipped_bundles_from_any_folder(project_copy, tmp_path, cache_dir):
    python = virtualenv(tmp_path / "venv")
    pip_install(python, *build_options(), "--editable", project_copy)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = ("import importlib.resources, live\n"
              "print(live.__file__)\n"
              "print(importlib.resources.files('live.weights'))\n"
              "model = live.load()\n"
              "print(list(model.stream(sys.argv[1], max_frames=60))[-1].label)\n")
    lines = run(python, "-c", "import sys\n" + script, SAMPLE, cwd=elsewhere).stdout.splitlines()
    assert lines[:2] == [str(project_copy / "live" / "__init__.py"), str(project_copy / "weights")]
    assert lines[-1] == "arm wrestling"


def test_help_names_the_default_bundle_and_a_backbone_neutral_weights_option():
    """A newcomer reads --help first: the default it names is the bundle that loads."""
    from click.testing import CliRunner

    from live.bundle import DEFAULT_BUNDLE
    from live.cli import main

    text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert f"weights/{DEFAULT_BUNDLE.name}" in text and (DEFAULT_BUNDLE / "manifest.json").is_file()
    assert "ImageNet" not in text  # the default backbone, MoViNet, was trained on Kinetics-600
