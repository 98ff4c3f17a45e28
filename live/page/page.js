"use strict";
// The page of `live --serve`. The server puts the streams as /api/streams gives them, with
// their last minute's scores, into the page (#initial), so the cards, their snapshots and their
// charts are there at the first paint; each card then switches to its MJPEG stream, and /events
// (Server-Sent Events) brings the results and the label events.

const COLOURS = ["#4e9be6", "#e6a04e", "#6fd16f", "#e65e5e", "#b07be6", "#e6d94e", "#4ed9d9", "#e64ec8"];
const WINDOW_S = 60;       // the chart's span: its axis says "60 s ago", "30 s ago", "now"
const GRID_S = 10;         // a vertical line every 10 s
const RETRY_MS = 2000;     // before asking again for a picture that failed (no frame yet, too many viewers)
const MAX_EVENTS = 200;    // label events kept on the page
const views = {};
const initial = JSON.parse(document.getElementById("initial").textContent);
// The chart's times are the server's (when each frame was read): "now" is the server's clock,
// which may differ from this computer's.
const skew = initial.now - Date.now() / 1000;
const segments = new Map();  // "stream|label|start": its <li>, so a closed segment replaces its open one

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  Object.assign(node, attributes || {});
  if (text !== undefined) node.textContent = text;
  return node;
}

function serverNow() {
  return Date.now() / 1000 + skew;
}

function percent(score) {
  return Math.round(score * 100) + "%";
}

// A file's name without its folders (the full name is the card's tooltip); a URL or a camera as given.
function shortName(name) {
  return name.includes("://") ? name : name.split(/[\\/]/).pop() || name;
}

function addStream(info) {
  const card = element("section", {className: "stream"});
  card.append(element("h2", {title: info.name}, info.stream + ": " + shortName(info.name)));
  const body = element("div", {className: "body"});
  const figure = element("figure", {className: "picture"});
  const img = element("img", {alt: "stream " + info.stream + ": " + shortName(info.name)});
  figure.append(img);
  const panel = element("div", {className: "info"});
  const label = element("div", {className: "label waiting"}, "waiting for the first result…");
  const bars = element("div", {className: "bars"});
  const chart = element("div", {className: "chart"});
  const canvas = element("canvas");
  const axis = element("div", {className: "axis"});
  axis.append(element("span", {}, WINDOW_S + " s ago"), element("span", {}, WINDOW_S / 2 + " s ago"),
              element("span", {}, "now"));
  const legend = element("div", {className: "legend"});
  chart.append(canvas, axis, legend);
  const figures = element("div", {className: "figures"});
  panel.append(label, bars, chart, figures);
  body.append(figure, panel);
  card.append(body);
  document.getElementById("streams").append(card);
  const view = {number: info.stream, img, figure, label, bars, canvas, legend, figures,
                history: [], top: [], colours: new Map(), size: null, asked: null, timer: null};
  views[info.stream] = view;
  setSize(view, info.width, info.height);
  view.history = (info.history || []).map(([time, top]) => ({time, scores: Object.fromEntries(top)}));
  if (info.label !== null) showResult(info);
  new ResizeObserver(() => drawChart(view)).observe(canvas);
  new ResizeObserver(() => refit(view)).observe(figure);
  return view;
}

// The source's size: the picture is laid out at it (or smaller) before a byte of it arrives.
function setSize(view, width, height) {
  if (!width || !height || (view.size && view.size[0] === width && view.size[1] === height)) return;
  view.size = [width, height];
  view.figure.style.setProperty("--w", width + "px");
  view.figure.style.setProperty("--ar", String(width / height));
}

// The height to ask the server for: the picture's height on the screen in device pixels, so
// that the browser never scales it; none (the source's own) when the picture is shown that big.
function wantedHeight(view) {
  if (!view.size) return null;
  const width = view.img.getBoundingClientRect().width;
  const height = Math.ceil(width * (window.devicePixelRatio || 1) * view.size[1] / view.size[0]);
  return height > 0 && height < view.size[1] ? height : null;
}

function pictureUrl(view, kind, height) {
  return "/streams/" + view.number + "." + kind + (height ? "?height=" + height : "");
}

// A snapshot first (the newest frame: something to see at once), then the stream. An <img>
// keeps showing its picture until the next one has arrived, so the switch does not flicker.
function startPicture(view) {
  const img = view.img;
  clearTimeout(view.timer);
  view.asked = wantedHeight(view);
  img.onload = () => {
    img.onload = null;
    if (!view.size) {  // no result yet when the page was made: the snapshot says the size
      setSize(view, img.naturalWidth, img.naturalHeight);
    }
    stream(view);
  };
  img.onerror = () => { view.timer = setTimeout(() => startPicture(view), RETRY_MS); };
  img.src = pictureUrl(view, "jpg", view.asked);
}

function stream(view) {
  view.asked = wantedHeight(view);
  view.img.onerror = () => { view.timer = setTimeout(() => startPicture(view), RETRY_MS); };
  view.img.src = pictureUrl(view, "mjpg", view.asked);
}

// After a resize, a stream at the new size once the size has settled (a new stream per
// step of a window being dragged would be wasted), when it differs by more than a tenth.
function refit(view) {
  clearTimeout(view.refitTimer);
  view.refitTimer = setTimeout(() => {
    if (!view.img.src.includes(".mjpg")) return;
    const wanted = wantedHeight(view);
    const had = view.asked || (view.size && view.size[1]), will = wanted || (view.size && view.size[1]);
    if (had && will && Math.abs(will - had) > had / 10) stream(view);
  }, 400);
}

function colourOf(view, label) {
  if (!view.colours.has(label)) {
    const used = new Set(view.colours.values());
    const free = COLOURS.findIndex((_, index) => !used.has(index));
    view.colours.set(label, free >= 0 ? free : view.colours.size % COLOURS.length);
  }
  return COLOURS[view.colours.get(label)];
}

function showResult(result) {
  const view = views[result.stream];
  if (!view || result.label === null) return;
  setSize(view, result.width, result.height);
  let headline = result.label + " " + percent(result.score), state = "";
  if (result.filled != null && result.filled < result.seq_len) {
    headline = "warming up " + result.filled + "/" + result.seq_len;
    state = "waiting";
  } else if (result.uncertain) {
    headline = "uncertain (" + result.label + " " + percent(result.score) + ")";
    state = "uncertain";
  }
  view.label.textContent = headline;
  view.label.className = "label " + state;

  // A label keeps its colour while it stays among the top ones: its bar, line and legend entry.
  view.top = result.top.map(([label]) => label);
  for (const label of [...view.colours.keys()]) {
    if (!view.top.includes(label)) view.colours.delete(label);
  }
  view.bars.replaceChildren(...result.top.map(([label, score]) => {
    const bar = element("div", {className: "bar"});
    const fill = element("div");
    fill.style.width = (score * 100).toFixed(1) + "%";
    fill.style.background = colourOf(view, label);
    bar.append(fill, element("span", {}, label + " " + percent(score)));
    return bar;
  }));

  const figures = [];
  if (result.source_fps != null) figures.push(["source " + result.source_fps.toFixed(1) + " fps"]);
  if (result.model_fps != null) {
    figures.push(["model " + result.model_fps.toFixed(1) + "/s " + Math.round(result.model_ms) + " ms"]);
  }
  if (result.dropped_fraction > 0.05) {
    figures.push(["falling behind: dropping " + percent(result.dropped_fraction) + " of frames", "warning"]);
  }
  if (result.missed) figures.push([result.missed + " sample points missed", "warning"]);
  view.figures.replaceChildren(...figures.map(([text, className]) =>
    element("span", {className: className || ""}, text)));

  const now = serverNow();
  view.history.push({time: result.wall || now, scores: Object.fromEntries(result.top)});
  while (view.history.length && now - view.history[0].time > WINDOW_S) view.history.shift();
  drawChart(view);
}

// The scores of the labels now on top over the last minute, one line each, in the colours of
// their bars; a line breaks where its label was not among the top ones. The legend names
// exactly the lines drawn (data-lines says which, for the tests).
function drawChart(view) {
  const canvas = view.canvas, ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width || !height) return;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const now = serverNow(), top = 4, bottom = height - 3;
  const x = age => (width - 1) * (1 - age / WINDOW_S);
  const y = score => bottom - (bottom - top) * score;
  context.lineWidth = 1;
  context.strokeStyle = "#2e2e2e";
  context.beginPath();
  for (let age = 0; age <= WINDOW_S; age += GRID_S) {
    context.moveTo(Math.round(x(age)) + 0.5, top);
    context.lineTo(Math.round(x(age)) + 0.5, bottom);
  }
  for (const score of [0, 0.5, 1]) {
    context.moveTo(0, Math.round(y(score)) + 0.5);
    context.lineTo(width, Math.round(y(score)) + 0.5);
  }
  context.stroke();
  context.fillStyle = "#777";
  context.font = "10px system-ui, sans-serif";
  context.fillText("100%", 3, y(1) + 11);
  context.fillText("50%", 3, y(0.5) + 11);

  context.lineWidth = 2;
  for (const label of view.top) {
    context.strokeStyle = colourOf(view, label);
    context.beginPath();
    let drawing = false;
    for (const entry of view.history) {
      const score = entry.scores[label];
      if (score === undefined) {
        drawing = false;
        continue;
      }
      const point = [x(now - entry.time), y(score)];
      if (drawing) context.lineTo(...point); else context.moveTo(...point);
      drawing = true;
    }
    context.stroke();
  }
  canvas.dataset.lines = JSON.stringify(view.top);
  view.legend.replaceChildren(...view.top.map(label => {
    const key = element("span", {}, "\u25A0 " + label);
    key.style.color = colourOf(view, label);
    return key;
  }));
}

function twoDigits(number) {
  return String(number).padStart(2, "0");
}

// Wall-clock time in the viewer's time zone, to the second: 14:03:07.
function clock(seconds) {
  const date = new Date(seconds * 1000);
  return [date.getHours(), date.getMinutes(), date.getSeconds()].map(twoDigits).join(":");
}

function duration(seconds) {
  const whole = Math.round(seconds);
  return whole < 60 ? whole + " s" : Math.floor(whole / 60) + " min " + twoDigits(whole % 60) + " s";
}

function showEvent(event) {
  const closed = event.state === "closed";
  const item = element("li", {className: event.state});
  const when = element("time");
  if (event.wall_start != null) {
    when.dateTime = new Date(event.wall_start * 1000).toISOString();
    const end = closed && event.wall_end != null ? "–" + clock(event.wall_end) : "";
    when.textContent = clock(event.wall_start) + end;
  } else {  // a server that does not say: the stream's own time
    when.textContent = event.start.toFixed(1) + (closed ? "–" + event.end.toFixed(1) : "") + " s";
  }
  item.title = "stream time " + event.start.toFixed(1) + (closed ? "–" + event.end.toFixed(1) : "") + " s";
  const detail = closed ? duration(event.end - event.start) + ", peak " + percent(event.peak_score) : "began";
  item.append(when, element("span", {className: "what"}, event.label), element("span", {}, detail),
              element("span", {className: "where"}, event.stream + ": " + shortName(event.name)));
  const key = [event.stream, event.label, event.start].join("|");
  const list = document.getElementById("events");
  const previous = segments.get(key);
  if (previous && previous.isConnected) previous.replaceWith(item); else list.prepend(item);
  segments.set(key, item);
  while (list.children.length > MAX_EVENTS) {
    const last = list.lastElementChild;
    for (const [name, node] of segments) if (node === last) segments.delete(name);
    last.remove();
  }
}

function connect(lost = false) {
  const state = document.getElementById("state");
  const source = new EventSource("/events");
  source.onopen = () => {
    state.textContent = "live";
    state.className = "";
    if (lost) Object.values(views).forEach(startPicture);  // the server came back: the pictures too
    lost = false;
  };
  source.onerror = () => {
    lost = true;
    state.textContent = "disconnected: retrying…";
    state.className = "down";
    if (source.readyState === EventSource.CLOSED) {  // refused (too many viewers): the browser gave up
      setTimeout(() => connect(true), 5000);
    }
  };
  source.addEventListener("result", message => showResult(JSON.parse(message.data)));
  source.addEventListener("label", message => showEvent(JSON.parse(message.data)));
}

const streams = initial.streams;
streams.forEach(addStream);
document.getElementById("count").textContent = streams.length + (streams.length === 1 ? " stream" : " streams");
document.title = "live: " + (streams.length === 1 ? shortName(streams[0].name) : streams.length + " streams");
Object.values(views).forEach(startPicture);
setInterval(() => Object.values(views).forEach(drawChart), 1000);  // the chart moves on between results
connect();
