"""Where results go: every output of a run (the window, the annotated video, the JSONL log, the
label events, the summary, the web view) is a Sink. `Model.stream(..., sinks=[...])` opens each
one with the streams it will see, hands it every result, and closes it once, however the run
ends (its end, Ctrl-C, a generator closed early, a stream that failed). A sink of your own
(a webhook, a database) is a class with the same methods:

    class Webhook(live.Sink):
        def put(self, result):
            if result.score > 0.9:
                post(result.to_dict())

`put` returns False to end the run (the window's q, stdout's reader gone); anything else goes on.
Each result carries what sinks need beyond itself (its overlay figures, the label events it
opened or closed), computed once, so sinks are independent of each other and of their order.
A sink that may be slow must not stall classification: the window and the web view take the
newest picture and drop the rest; the video, the JSONL and the events lose nothing.
"""
from live.errors import UserError
from live.sinks.base import DrawingSink, Overlay, Sink, StreamInfo, close_all
from live.sinks.records import EventSink, JsonlSink
from live.sinks.summary import SummarySink
from live.sinks.video import VideoSink
from live.sinks.window import WindowSink

__all__ = ["DrawingSink", "EventSink", "JsonlSink", "Overlay", "Sink", "StreamInfo", "SummarySink", "VideoSink",
           "WindowSink", "build_sinks", "close_sinks", "deliver", "finish_sinks", "parse_address"]


def deliver(result, sinks):
    """Hand one result to every sink; False when one of them asks for the run to end."""
    wanted = True
    for sink in sinks:
        if sink.put(result) is False:
            wanted = False
    return wanted


def finish_sinks(sinks, events):
    """Hand every sink the label events the end of the run closes."""
    for sink in sinks:
        sink.finish(events)


def close_sinks(sinks):
    close_all(reversed(list(sinks)))


def build_sinks(config, window, address=None):
    """The sinks a RunConfig asks for: `window` when one is shown, `address` ((host, port))
    when the web view serves. The window and the video share one drawing of each picture."""
    overlay = Overlay(top_k=config.top_k, threshold=config.threshold, min_height=480 if window else 0)
    sinks = []
    if window:
        sinks.append(WindowSink(overlay))
    if config.output:
        sinks.append(VideoSink(config.output, overlay))
    if config.events:
        sinks.append(EventSink(config.events))
    if config.jsonl:
        sinks.append(JsonlSink(config.jsonl, config.jsonl_probs))
    if address:
        from live.web import WebSink

        sinks.append(WebSink(address, token=config.serve_token, top_k=config.top_k, threshold=config.threshold,
                             overlay=overlay))
    sinks.append(SummarySink())
    return sinks


def parse_address(text):
    """`--serve [HOST:]PORT` as (host, port): 127.0.0.1 when no host is given."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise UserError(f"--serve {text}: give a port (0-65535), optionally after a host: 8080, "
                        "0.0.0.0:8080, [::1]:8080", exit_code=2)
    return host, int(port)
