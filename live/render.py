"""The renderer: the one place that draws on frames."""
import math

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, GREEN, AMBER, RED = (255, 255, 255), (225, 225, 225), (80, 220, 80), (0, 190, 255), (60, 60, 235)


class OverlayRenderer:
    """Draws the top label, the top-k list with bars, the source's frame rate, the model's rate
    and latency, and the warm-up, uncertain and falling-behind notes. Text scales with the
    frame; frames under `min_height` pixels are enlarged first so the overlay stays legible
    (the saved video keeps the source size)."""

    def __init__(self, top_k=3, threshold=0.0, min_height=0):
        self.top_k = top_k
        self.threshold = threshold
        self.min_height = min_height

    def rows(self, result, status):
        """The overlay's lines, top to bottom: (text, colour, size, bar length 0..1 or None)."""
        if result.filled < result.seq_len:
            headline, colour = f"warming up {result.filled}/{result.seq_len}", AMBER
        elif result.score < self.threshold:
            headline, colour = f"uncertain ({shown(result.label)} {result.score:.0%})", AMBER
        else:
            headline, colour = f"{shown(result.label)} {result.score:.0%}", GREEN
        rows = [(headline, colour, 1.0, None)]
        rows += [(f"{shown(label)} {score:.0%}", WHITE, 0.7, score) for label, score in result.top(self.top_k)]
        rows.append((f"source {status['source_fps']:.1f} fps", GREY, 0.6, None))
        rows.append((f"model {status['model_fps']:.1f}/s  {status['model_ms']:.0f} ms", GREY, 0.6, None))
        if status.get("dropped_fraction", 0) > 0.05:
            rows.append((f"falling behind: dropping {status['dropped_fraction']:.0%} of frames", AMBER, 0.6, None))
        if status.get("missed", 0):
            rows.append((f"{status['missed']} sample points missed", AMBER, 0.6, None))
        return rows

    def draw(self, image, result, status):
        """Return an annotated BGR copy of `image` for `result` (a Result) and `status` (a dict
        with source_fps, model_fps, model_ms and dropped_fraction: OverlayStatus.as_dict())."""
        return self.draw_rows(image, self.rows(result, status))

    def draw_rows(self, image, rows):
        """Return a BGR copy of `image` with `rows` ((text, colour, size, bar) as rows() gives
        them) in a darkened box at its top left: the overlay's look, whatever the lines say."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        height, width = image.shape[:2]
        if height < self.min_height:
            factor = self.min_height / height
            image = cv2.resize(image, (round(width * factor), self.min_height), interpolation=cv2.INTER_LINEAR)
        else:
            image = image.copy()
        height, width = image.shape[:2]
        scale = max(0.4, min(width, height) / 480)
        line = int(32 * scale)
        x, y = int(10 * scale), int(10 * scale)
        box_width = max(cv2.getTextSize(text, FONT, size * scale, 2)[0][0] for text, _, size, _ in rows) + 2 * x
        box_height = sum(int(line * max(size, 0.7)) for _, _, size, _ in rows) + y + int(line * 0.45)  # room for descenders
        overlay = image[:min(box_height, height), :min(box_width, width)]
        overlay[:] = (overlay * 0.3).astype(np.uint8)  # darken behind the text so it reads on any picture
        for text, text_colour, size, bar in rows:
            y += int(line * max(size, 0.7))
            if bar is not None:
                bar_end = x + int(bar * (box_width - 2 * x))
                cv2.rectangle(image, (x, y - int(line * 0.6)), (bar_end, y + int(line * 0.1)), (90, 90, 90), -1)
            thickness = 2 if size >= 1.0 else 1
            cv2.putText(image, text, (x, y), FONT, size * scale, text_colour, thickness, cv2.LINE_AA)
        return image


class GridView:
    """Several streams in one picture: each stream's latest annotated frame, letterboxed into a
    cell of its own in stream order (left to right, top to bottom), its name along the bottom."""

    CELL = (640, 480)
    MAX_SIZE = (1920, 1080)  # cells shrink so that a grid of many streams still fits a screen

    def __init__(self, names):
        self.cells = {name: index for index, name in enumerate(names)}
        self.columns = math.ceil(math.sqrt(len(names)))
        rows = math.ceil(len(names) / self.columns)
        factor = min(1.0, self.MAX_SIZE[0] / (self.columns * self.CELL[0]), self.MAX_SIZE[1] / (rows * self.CELL[1]))
        self.cell = width, height = round(self.CELL[0] * factor), round(self.CELL[1] * factor)
        self.image = np.zeros((rows * height, self.columns * width, 3), np.uint8)
        for name in names:
            self.put(name, np.zeros((height, width, 3), np.uint8))

    def put(self, name, image):
        width, height = self.cell
        row, column = divmod(self.cells[name], self.columns)
        cell = self.image[row * height:(row + 1) * height, column * width:(column + 1) * width]
        factor = min(width / image.shape[1], height / image.shape[0])
        fitted = cv2.resize(image, (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor))),
                            interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        top, left = (height - fitted.shape[0]) // 2, (width - fitted.shape[1]) // 2
        cell[:] = 0
        cell[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
        caption = name if len(name) <= 60 else "..." + name[-57:]
        (text_width, text_height), _ = cv2.getTextSize(caption, FONT, 0.5, 1)
        cell[height - text_height - 12:, :text_width + 12] //= 4  # darken behind the name
        cv2.putText(cell, caption, (6, height - 7), FONT, 0.5, WHITE, 1, cv2.LINE_AA)


def shown(label):
    """A label as a person reads it: `playing_basketball` (a folder name) as "playing basketball".
    Records (JSONL, events) keep the label as the bundle names it."""
    return label.replace("_", " ")
