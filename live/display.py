"""The on-screen window, and the check for whether there is a screen to open it on."""
import ctypes
import ctypes.util
import os
import socket
import sys
import time

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


def screen_problem(probe_window=True):
    """None when a window can be shown, else why not (for a one-line note). Without
    `probe_window`, only whether there is a screen: the probe makes OpenCV's window, which is
    for the moment the window is shown (Window), not seconds before."""
    if sys.platform.startswith("linux"):
        display = os.environ.get("DISPLAY")
        if not display and not os.environ.get("WAYLAND_DISPLAY"):
            return "no screen (DISPLAY is not set)"
        if display and not os.environ.get("WAYLAND_DISPLAY") and not _x_server_answers(display):
            return f"no screen (the X display {display} does not answer)"
    if not probe_window:
        return None
    try:
        cv2.namedWindow(WINDOW, WINDOW_FLAGS)
    except cv2.error:
        return "this OpenCV build has no GUI support (opencv-python-headless?)"
    return None


class Window:
    """Shows frames; `show` returns False once the user quits: q, Esc, the title bar's close
    button, or the window destroyed by another program."""

    def __init__(self):
        cv2.namedWindow(WINDOW, WINDOW_FLAGS)
        self._shown = False
        self._x_window = XWindowWatch.for_screen()

    def show(self, image):
        try:
            # Closed from its title bar, the last Qt window takes OpenCV's GUI thread with it:
            # the property read then raises instead of answering 0.
            if self._shown and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                return False
            if self._x_window and self._x_window.destroyed():
                return False  # Qt does not notice: it would draw on for ever into no window
            cv2.imshow(WINDOW, image)
            self._shown = True
            return (cv2.waitKey(1) & 0xFF) not in QUIT_KEYS
        except cv2.error:
            return False

    def close(self):
        try:
            cv2.destroyWindow(WINDOW)
            cv2.waitKey(1)
        except cv2.error:
            pass
        if self._x_window:
            self._x_window.close()


class _Cookie(ctypes.Structure):
    _fields_ = [("sequence", ctypes.c_uint)]


class _ScreenIterator(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_uint32)), ("rem", ctypes.c_int), ("index", ctypes.c_int)]


class XWindowWatch:
    """Whether this process's window still exists on the X server. A window destroyed by
    another program (`xdotool windowclose`, a session tool) with no window manager in between
    sends Qt no close event, and OpenCV goes on reporting it visible. Talks X through libxcb
    on a connection of its own: xcb hands errors back as values (Xlib's default handler would
    end the process on a window that vanished mid-query)."""

    CHECK_EVERY_S = 0.25  # a few round trips to the X server, four times a second
    FIND_FOR_S = 10.0     # the window is mapped a moment after the first imshow; give up after this
    WM_NAME, ANY_TYPE = 39, 0  # predefined atoms of the X protocol

    @classmethod
    def for_screen(cls):
        """A watch on the X display in DISPLAY, or None where there is none to watch (Wayland,
        macOS, Windows, no libxcb)."""
        path = ctypes.util.find_library("xcb") if os.environ.get("DISPLAY") else None
        if not path or os.environ.get("QT_QPA_PLATFORM", "xcb") != "xcb":
            return None
        try:
            return cls(ctypes.CDLL(path))
        except (OSError, AttributeError, ConnectionError):
            return None

    def __init__(self, xcb):
        self._xcb = xcb
        self._free = ctypes.CDLL(None).free
        pointer, cookie = ctypes.c_void_p, _Cookie
        for name, restype, argtypes in [
                ("xcb_connect", pointer, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]),
                ("xcb_connection_has_error", ctypes.c_int, [pointer]),
                ("xcb_disconnect", None, [pointer]),
                ("xcb_get_setup", pointer, [pointer]),
                ("xcb_setup_roots_iterator", _ScreenIterator, [pointer]),
                ("xcb_screen_next", None, [ctypes.POINTER(_ScreenIterator)]),
                ("xcb_intern_atom", cookie, [pointer, ctypes.c_uint8, ctypes.c_uint16, ctypes.c_char_p]),
                ("xcb_intern_atom_reply", ctypes.POINTER(ctypes.c_uint32), [pointer, cookie, pointer]),
                ("xcb_query_tree", cookie, [pointer, ctypes.c_uint32]),
                ("xcb_query_tree_reply", pointer, [pointer, cookie, ctypes.POINTER(pointer)]),
                ("xcb_query_tree_children", ctypes.POINTER(ctypes.c_uint32), [pointer]),
                ("xcb_query_tree_children_length", ctypes.c_int, [pointer]),
                ("xcb_get_property", cookie, [pointer, ctypes.c_uint8, ctypes.c_uint32, ctypes.c_uint32,
                                              ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32]),
                ("xcb_get_property_reply", pointer, [pointer, cookie, ctypes.POINTER(pointer)]),
                ("xcb_get_property_value", pointer, [pointer]),
                ("xcb_get_property_value_length", ctypes.c_int, [pointer])]:
            function = getattr(xcb, name)
            function.restype, function.argtypes = restype, argtypes
        self._free.argtypes = [pointer]
        screen = ctypes.c_int()
        self._connection = xcb.xcb_connect(None, ctypes.byref(screen))
        if xcb.xcb_connection_has_error(self._connection):
            xcb.xcb_disconnect(self._connection)
            raise ConnectionError("no X connection")
        roots = xcb.xcb_setup_roots_iterator(xcb.xcb_get_setup(self._connection))
        for _ in range(screen.value):
            xcb.xcb_screen_next(ctypes.byref(roots))
        self._root = roots.data[0]  # xcb_screen_t starts with its root window
        reply = xcb.xcb_intern_atom_reply(self._connection, xcb.xcb_intern_atom(self._connection, 1, 11,
                                                                                b"_NET_WM_PID"), None)
        self._pid_atom = reply[2] if reply else 0  # after the reply's 8-byte header
        self._free(reply)
        self._window = None
        self._started = self._checked = time.monotonic()

    def destroyed(self):
        """True once the window found on the screen is gone (checked every CHECK_EVERY_S)."""
        now = time.monotonic()
        if now - self._checked < self.CHECK_EVERY_S:
            return False
        self._checked = now
        if self._window is None:
            if now - self._started < self.FIND_FOR_S:
                self._window = self._find()
            return False
        return self._children(self._window) is None

    def _find(self):
        """This process's top-level window named WINDOW: a child of the root, or with a
        window manager, a child of its frame."""
        for child in self._children(self._root) or []:
            for window in [child, *(self._children(child) or [])]:
                if self._property(window, self.WM_NAME) == WINDOW.encode() and \
                        self._property(window, self._pid_atom) == os.getpid().to_bytes(4, sys.byteorder):
                    return window
        return None

    def _children(self, window):
        """The window's children, or None when it does not exist (any more)."""
        error = ctypes.c_void_p()
        reply = self._xcb.xcb_query_tree_reply(self._connection, self._xcb.xcb_query_tree(self._connection, window),
                                               ctypes.byref(error))
        self._free(error)
        if not reply:
            return None
        children = self._xcb.xcb_query_tree_children(reply)[:self._xcb.xcb_query_tree_children_length(reply)]
        self._free(reply)
        return children

    def _property(self, window, atom):
        """A property's raw bytes (at most 64), b"" when unset or the window is gone."""
        if not atom:
            return b""
        error = ctypes.c_void_p()
        cookie = self._xcb.xcb_get_property(self._connection, 0, window, atom, self.ANY_TYPE, 0, 16)
        reply = self._xcb.xcb_get_property_reply(self._connection, cookie, ctypes.byref(error))
        self._free(error)
        if not reply:
            return b""
        value = ctypes.string_at(self._xcb.xcb_get_property_value(reply), self._xcb.xcb_get_property_value_length(reply))
        self._free(reply)
        return value

    def close(self):
        self._xcb.xcb_disconnect(self._connection)
