"""The on-screen window, and the check for whether there is a screen to open it on."""
import os
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


def screen_problem():
    """None when a window can be shown, else why not (for a one-line note)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no screen (DISPLAY is not set)"
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
