"""The on-screen window, and the check for whether there is a screen to open it on."""
import os
import sys

import cv2

WINDOW = "live"
QUIT_KEYS = {ord("q"), ord("Q"), 27}


def screen_problem():
    """None when a window can be shown, else why not (for a one-line note)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no screen (DISPLAY is not set)"
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        return "this OpenCV build has no GUI support (opencv-python-headless?)"
    return None


class Window:
    """Shows frames; `show` returns False once the user quits (q, Esc or closing the window)."""

    def __init__(self, size):
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        cv2.resizeWindow(WINDOW, *size)
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
