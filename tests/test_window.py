"""The on-screen window, for real: live draws into an X window on Xvfb; a screenshot is read
back with OCR to find the label and the frame rate drawn on it."""
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from conftest import CLIPS, wait_for, x_env

pytestmark = [pytest.mark.slow, pytest.mark.real_data, pytest.mark.skipif(not all(shutil.which(t) for t in ("Xvfb", "import", "tesseract", "xdotool", "ffmpeg")),
                                reason="needs Xvfb, ImageMagick, tesseract-ocr, xdotool and ffmpeg")]


def find_window(env, process, timeout=90):
    """live's window, or None once `process` has ended or `timeout` has passed without one."""
    def search():
        if process.poll() is not None:
            return "ended"
        found = subprocess.run(["xdotool", "search", "--name", "^live$"], env=env, capture_output=True, text=True)
        return found.stdout.split()[0] if found.stdout.strip() else None

    found = wait_for(search, timeout, interval=0.3)
    return None if found == "ended" else found


def press_q(window, env):
    """Press q in live's window. With no window manager the keyboard follows the pointer, so
    the pointer goes into the window first."""
    subprocess.run(["xdotool", "mousemove", "--window", window, "20", "20"], env=env, timeout=10)
    subprocess.run(["xdotool", "key", "q"], env=env, timeout=10)


def overlay_text(window, env, folder):
    """OCR of the window's top-left corner, where the overlay sits, enlarged and inverted."""
    shot = folder / "screen.png"
    subprocess.run(["import", "-window", window, str(folder / "window.png")], env=env, check=True, timeout=30)
    subprocess.run(["convert", str(folder / "window.png"), "-crop", "50%x40%+0+0", "-resize", "300%",
                    "-colorspace", "Gray", "-negate", "-threshold", "50%", str(shot)], check=True)
    return subprocess.run(["tesseract", str(shot), "-", "--psm", "6"], capture_output=True, text=True).stdout


def test_window_shows_label_and_quits_on_q(window_manager, lite_bundle, tmp_path):
    env = x_env(window_manager)
    clip = tmp_path / "long.mp4"  # 1,200 frames: long enough that only `q` can end the run early
    subprocess.run(["ffmpeg", "-loglevel", "error", "-stream_loop", "3", "-i", str(CLIPS / "pool_cleaning.mp4"),
                    "-c", "copy", str(clip)], check=True)
    process = subprocess.Popen(["live", "--file", str(clip), "--weights", str(lite_bundle)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = find_window(env, process)
        assert window, process.stderr.read() if process.poll() is not None else "no window appeared"
        # Past the warm-up, the overlay shows a label with its score and the frame rate and
        # latency line. Read it until both are there: one screenshot's OCR can miss the small
        # grey line on a busy frame, the next one reads it.
        label = re.compile(r"(alpha|beta|gamma) \d+%")
        stats = re.compile(r"\d+\.\d fp|\d+ ms")

        def labelled_overlay():
            text = overlay_text(window, env, tmp_path)
            return text if label.search(text) and stats.search(text) else None

        text = wait_for(labelled_overlay, 60, interval=0.5) or overlay_text(window, env, tmp_path)
        assert label.search(text), text  # a label and its score
        assert stats.search(text), text  # the frame rate and latency line
        press_q(window, env)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "frames read" in stderr
    read = int(stderr.split("frames read ")[1].split(",")[0])
    assert read < 1200  # it quit on q, before the clip ended


def test_grid_window_shows_every_stream(window_manager, tmp_path):
    env = x_env(window_manager)
    process = subprocess.Popen(["live", "--file", str(CLIPS / "arm_wrestling.mp4"), "--file",
                                str(CLIPS / "pool_cleaning.mp4"), "--file", str(CLIPS / "basketball.mp4"),
                                "--loop", "--max-fps", "20"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = find_window(env, process)
        assert window, process.stderr.read() if process.poll() is not None else "no window appeared"
        def geometry():
            return subprocess.run(["xdotool", "getwindowgeometry", window], env=env, capture_output=True,
                                  text=True).stdout

        # Three streams: a 2 x 2 grid of 640 x 480 cells (once the first picture has sized the window).
        assert wait_for(lambda: "1280x960" in geometry(), 30, interval=0.3), geometry()
        shot = tmp_path / "grid.png"

        def grid_cells():
            subprocess.run(["import", "-window", window, str(shot)], env=env, check=True, timeout=30)
            image = cv2.imread(str(shot))
            return [image[r * 480:(r + 1) * 480, c * 640:(c + 1) * 640] for r in (0, 1) for c in (0, 1)]

        def pictures(cells):  # a picture in each stream's cell
            return all(cell.std() > 20 for cell in cells[:3])

        def distinct(cells):  # different clips, not one stream three times
            return min(np.abs(cells[a].astype(int) - cells[b]).mean() for a, b in ((0, 1), (0, 2), (1, 2))) > 10

        def every_stream_drawn():  # the first picture sizes the window before all three have drawn
            cells = grid_cells()
            return cells if pictures(cells) and distinct(cells) else None

        cells = wait_for(every_stream_drawn, 30, interval=0.5) or grid_cells()
        assert pictures(cells), [cell.std() for cell in cells]
        assert cells[3].max() == 0  # the fourth cell has no stream
        assert distinct(cells)
        press_q(window, env)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
        assert "all 3 streams" in stderr
    finally:
        process.kill()
