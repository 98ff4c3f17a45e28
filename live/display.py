"""The on-screen window, and the check for whether there is a screen to open it on."""
import os
import socket
import sys

import cv2

WINDOW = "live"
# OpenCV's Qt looks for fonts inside its own wheel, finds none and says so on every window;
# point it at the system's fonts instead.
for _fonts in ("/usr/share/fonts/truetype", "/usr/share/fonts"):
    if os.path.isdir(_fonts):
        os.environ.setdefault("QT_QPA_FONTDIR", _fonts)
        break
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")
QUIT_KEYS = {ord("q"), ord("Q"), 27}
# The picture at its drawn size, without Qt's toolbar (which would shrink it).
WINDOW_FLAGS = cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL


def _x_server_answers(display):
    """Whether the X server named by DISPLAY accepts connections. Qt aborts the whole process
    when it can't reach the display, so this is checked before any window is made."""
    host, _, number = display.rpartition(":")
    number = number.split(".")[0]
    if not number.isdigit():
        return False
    try:
        if host in ("", "unix"):
            with socket.socket(socket.AF_UNIX) as connection:
                connection.settimeout(2)
                connection.connect(f"/tmp/.X11-unix/X{number}")
        else:
            socket.create_connection((host, 6000 + int(number)), timeout=2).close()
    except OSError:
        return False
    return True


def screen_problem():
    """None when a window can be shown, else why not (for a one-line note)."""
    if sys.platform.startswith("linux"):
        display = os.environ.get("DISPLAY")
        if not display and not os.environ.get("WAYLAND_DISPLAY"):
            return "no screen (DISPLAY is not set)"
        if display and not os.environ.get("WAYLAND_DISPLAY") and not _x_server_answers(display):
            return f"no screen (the X display {display} does not answer)"
    try:
        cv2.namedWindow(WINDOW, WINDOW_FLAGS)
    except cv2.error:
        return "this OpenCV build has no GUI support (opencv-python-headless?)"
    return None


class Window:
    """Shows frames; `show` returns False once the user quits (q, Esc or closing the window)."""

    def __init__(self):
        cv2.namedWindow(WINDOW, WINDOW_FLAGS)
        self._shown = False

    def show(self, image):
        if self._shown and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            return False  # the user closed the window
        cv2.imshow(WINDOW, image)
        self._shown = True
        return (cv2.waitKey(1) & 0xFF) not in QUIT_KEYS

    def close(self):
        try:
            cv2.destroyWindow(WINDOW)
            cv2.waitKey(1)
        except cv2.error:
            pass
