"""Where a file ends is what its frames' times say, not OpenCV's frame count estimate: a
variable-rate file decoded to its end exits 0; a file cut short still exits 1 and says so."""
import json
import shutil
import subprocess

import pytest

from conftest import assert_clean_error, run_command

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs ffmpeg")


@pytest.fixture(scope="module")
def variable_rate_mkv(tmp_path_factory):
    """4 s at 30 fps joined to 4 s at 10 fps, without re-encoding (160 frames; OpenCV estimates
    240, the duration times the first part's rate)."""
    folder = tmp_path_factory.mktemp("vfr")
    for name, rate in (("fast.mkv", 30), ("slow.mkv", 10)):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc=size=160x120:rate={rate}",
                        "-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p", folder / name], check=True)
    (folder / "list.txt").write_text("file fast.mkv\nfile slow.mkv\n")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "concat", "-i", folder / "list.txt", "-c", "copy",
                    folder / "joined.mkv"], check=True)
    return folder / "joined.mkv"


def test_a_variable_rate_file_read_to_its_end_is_whole(variable_rate_mkv):
    process = run_command("live", "--file", variable_rate_mkv, "--weights", "demo", "--no-display", "--jsonl", "-")
    assert process.returncode == 0, process.stderr
    times = [json.loads(line)["time"] for line in process.stdout.splitlines()]
    assert len(times) == 160 and times[-1] == pytest.approx(7.9, abs=0.01)
    assert "error" not in process.stderr


def test_a_file_cut_short_is_still_called_damaged(variable_rate_mkv, tmp_path):
    cut = tmp_path / "cut.mkv"
    data = variable_rate_mkv.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    process = run_command("live", "--file", cut, "--weights", "demo", "--no-display")
    assert_clean_error(process, "cut.mkv stopped decoding after", "of 240 frames; the rest of the file is damaged")
    assert process.returncode == 1
