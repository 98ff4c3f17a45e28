"""`train download` against a real local HTTP server that honours Range, to test resuming."""
import http.server
import io
import random
import re
import socket
import tarfile
import threading

import pytest

from conftest import assert_clean_error, run_command


def make_archive():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("train.csv", "test.csv", "train/v_Punch_g01_c01.avi"):
            data = random.Random(name).randbytes(20000)  # incompressible, so the archive is large
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def server():
    archive = make_archive()
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.headers.get("Range"))
            start = 0
            match = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match:
                start = int(match.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(archive) - 1}/{len(archive)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(archive) - start))
            self.end_headers()
            self.wfile.write(archive[start:])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/ucf101_top5.tar.gz", archive, requests
    httpd.shutdown()


def test_download_extracts(server, tmp_path):
    url, archive, _ = server
    process = run_command("train", "download", "ucf101-top5", "--to", tmp_path, "--url", url)
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "ucf101_top5.tar.gz").read_bytes() == archive
    assert (tmp_path / "train" / "v_Punch_g01_c01.avi").exists()


def test_download_resumes_a_partial_file(server, tmp_path):
    url, archive, requests = server
    (tmp_path / "ucf101_top5.tar.gz.part").write_bytes(archive[:1000])
    process = run_command("train", "download", "ucf101-top5", "--to", tmp_path, "--url", url)
    assert process.returncode == 0, process.stderr
    assert requests == ["bytes=1000-"]
    assert (tmp_path / "ucf101_top5.tar.gz").read_bytes() == archive
    assert (tmp_path / "test.csv").exists()


def test_download_offline_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = run_command("train", "download", "ucf101-top5", "--to", tmp_path,
                          "--url", f"http://127.0.0.1:{port}/ucf101_top5.tar.gz")
    assert_clean_error(process, "cannot reach")
