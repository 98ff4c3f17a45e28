"""The model store (live/store.py): third-party files named by content, found in LIVE_MODELS
or the cache, or downloaded from a real local HTTP server (good, cut and resumed, wrong
content); and the project holding no copy of the data folder's files."""
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from conftest import CLIPS, DATA, KINETICS, MODELS, ROOT, assert_clean_error, free_port, run_command

pytestmark = pytest.mark.real_data  # reads the data folder (tests/conftest.py)

MODEL = MODELS / "movinet_a0_stream_k600" / "model_int8.tflite"


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    """An empty cache and no LIVE_MODELS, for this process and the commands it starts."""
    monkeypatch.setenv("LIVE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LIVE_MODELS", raising=False)
    return tmp_path / "cache" / "models"


@pytest.fixture
def server():
    """Serves the data folder's model files by name, honouring Range. `cut_after` bytes end the
    next response early (the connection drops); `corrupt` serves altered bytes."""
    files = {path.name: path.read_bytes() for path in MODELS.rglob("*") if path.is_file()}
    state = {"cut_after": None, "corrupt": False, "ranges": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            if state["corrupt"]:
                data = bytes(b ^ 0x55 for b in data[:64]) + data[64:]
            state["ranges"].append(self.headers.get("Range"))
            start = int(match.group(1)) if (match := re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")) else 0
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if state["cut_after"] is not None:
                body, state["cut_after"] = body[:state["cut_after"]], None
                self.wfile.write(body)
                self.wfile.flush()
                self.connection.shutdown(2)  # the connection drops mid-file
                return
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", state
    httpd.shutdown()


def bundle_served_from(tmp_path, base_url):
    """The default bundle with its stored files' URLs pointing at `base_url`."""
    bundle = shutil.copytree(KINETICS, tmp_path / "kinetics600")
    manifest = json.loads((bundle / "manifest.json").read_text())
    for role, reference in manifest["stored_files"].items():
        source = MODEL if role == "backbone" else MODELS / "movinet_a0_stream_k600" / "labels.txt"
        reference["url"] = f"{base_url}/{source.name}"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return bundle


def test_found_by_content_in_live_models_whatever_its_name(tmp_path, store_env):
    folder = tmp_path / "models" / "deep" / "er"
    folder.mkdir(parents=True)
    os.link(MODEL, folder / "anything.bin") if MODEL.stat().st_dev == folder.stat().st_dev \
        else shutil.copy(MODEL, folder / "anything.bin")
    damaged = bytearray(MODEL.read_bytes())
    damaged[1000] ^= 1
    (tmp_path / "models" / "a_damaged_copy.tflite").write_bytes(bytes(damaged))  # same size, other content
    env = {"LIVE_MODELS": os.pathsep.join([str(tmp_path / "nothing-here"), str(tmp_path / "models")])}
    process = run_command("live", "--version", env=env)
    assert process.returncode == 0, process.stderr
    assert f"MoViNet-A0-Stream Kinetics-600, int8 LiteRT (Google, Apache-2.0): {folder / 'anything.bin'}" \
        in process.stdout
    assert "label list (tensorflow/models, Apache-2.0): not found; downloaded on first use from https://" \
        in process.stdout
    process = run_command("live", "--version", env={"LIVE_MODELS": str(MODELS)})
    assert str(MODEL) in process.stdout and str(MODELS / "movinet_a0_stream_k600" / "labels.txt") in process.stdout


def test_hashes_are_remembered_by_path_size_and_mtime(tmp_path, store_env, monkeypatch):
    from live import store

    monkeypatch.setenv("LIVE_MODELS", str(MODELS))
    stored = store.STORED_FILES["movinet_a0_stream_k600_int8"]
    assert store.find(stored) == MODEL
    memo = store_env / "hashes.json"
    known = json.loads(memo.read_text())
    assert known[os.path.realpath(MODEL)][2] == stored.sha256
    # A remembered hash is trusted while size and mtime hold: a wrong one hides the file ...
    known[os.path.realpath(MODEL)][2] = "0" * 64
    memo.write_text(json.dumps(known))
    assert store.find(stored) is None
    # ... and a file whose mtime moved is hashed again.
    copy = tmp_path / "models" / "copy.tflite"
    copy.parent.mkdir()
    shutil.copy(MODEL, copy)
    monkeypatch.setenv("LIVE_MODELS", str(copy.parent))
    assert store.find(stored) == copy
    known = json.loads(memo.read_text())
    known[os.path.realpath(copy)][2] = "0" * 64
    memo.write_text(json.dumps(known))
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    assert store.find(stored) == copy


def test_missing_and_offline_is_one_line_before_tensorflow(tmp_path, store_env):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: as offline as a machine gets
    bundle = bundle_served_from(tmp_path, closed)
    # `live` with TensorFlow made unimportable: the answer must come before it is needed.
    no_tensorflow = "import sys; sys.modules['tensorflow'] = None; from live.cli import command; command()"
    process = subprocess.run([sys.executable, "-c", no_tensorflow, "--file", CLIPS / "arm_wrestling.mp4", "--weights",
                              bundle, "--no-display"], capture_output=True, text=True, timeout=120)
    error = assert_clean_error(process, "MoViNet-A0-Stream", "LIVE_MODELS", f"{closed}/model_int8.tflite",
                               str(store_env), "cannot reach")
    assert process.returncode == 2, error
    assert not store_env.exists() or not [p for p in store_env.iterdir() if p.name != "hashes.json"]


def test_download_checks_and_caches_then_live_runs(tmp_path, store_env, server):
    base_url, state = server
    bundle = bundle_served_from(tmp_path, base_url)
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", bundle, "--no-display",
                          "--max-frames", 30)
    assert process.returncode == 0, process.stderr
    assert "top label: arm wrestling" in process.stderr
    cached = store_env / "movinet_a0_stream_k600_int8.tflite"
    assert cached.read_bytes() == MODEL.read_bytes()
    assert sorted(p.name for p in store_env.iterdir()) == ["hashes.json", "kinetics_600_labels.txt",
                                                           "movinet_a0_stream_k600_int8.tflite"]
    assert state["ranges"] == [None, None]  # once each, whole
    process = run_command("live", "--version")
    assert f"MoViNet-A0-Stream Kinetics-600, int8 LiteRT (Google, Apache-2.0): {cached}" in process.stdout


def test_a_cut_download_resumes_and_never_leaves_a_partial_file_under_the_name(tmp_path, store_env, server):
    from live import store
    from live.errors import UserError

    base_url, state = server
    stored = replace(store.STORED_FILES["movinet_a0_stream_k600_int8"], url=f"{base_url}/model_int8.tflite")
    state["cut_after"] = 1_000_000
    with pytest.raises(UserError, match="failed .*the next run resumes it"):
        store.locate(stored)
    assert not (store_env / stored.name).exists()
    (partial,) = store_env.glob(".*.part")
    assert partial.stat().st_size == 1_000_000
    assert store.locate(stored) == store_env / stored.name
    assert state["ranges"] == [None, "bytes=1000000-"]
    assert hashlib.sha256((store_env / stored.name).read_bytes()).hexdigest() == stored.sha256
    assert not list(store_env.glob(".*"))


def test_a_download_with_the_wrong_content_is_refused_and_removed(tmp_path, store_env, server):
    from live import store
    from live.errors import UserError

    base_url, state = server
    stored = replace(store.STORED_FILES["movinet_a0_stream_k600_int8"], url=f"{base_url}/model_int8.tflite")
    state["corrupt"] = True
    with pytest.raises(UserError, match="is not the expected file .* it was removed"):
        store.locate(stored)
    assert not list(store_env.iterdir())


def test_a_malformed_reference_is_refused(tmp_path, store_env):
    bundle = shutil.copytree(KINETICS, tmp_path / "kinetics600")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["stored_files"]["backbone"]["name"] = "../../etc/passwd"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    process = run_command("live", "--file", CLIPS / "arm_wrestling.mp4", "--weights", bundle, "--no-display")
    assert_clean_error(process, "malformed")


def test_no_tracked_file_is_a_copy_of_the_data_folder():
    """The project ships what it made: none of its files is a copy of a file in the data folder
    (models, clips, photos, ucf11_dev), compared by sha256."""
    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    theirs = {digest(path): path for path in DATA.rglob("*")
              if path.is_file() and path.stat().st_size >= 1024 and "reserved" not in path.parts}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    copies = [f"{name} (= {theirs[digest(ROOT / name)]})" for name in tracked.stdout.splitlines()
              if (ROOT / name).is_file() and (ROOT / name).stat().st_size >= 1024 and digest(ROOT / name) in theirs]
    assert not copies
