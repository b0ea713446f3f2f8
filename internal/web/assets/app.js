// iog console: live logs over server-sent events. Output is inserted as text, never as HTML.
// No inline scripts anywhere (the Content-Security-Policy forbids them); htmx does the rest.
"use strict";

function followLogs(box) {
  const out = box.querySelector("pre.out");
  const state = box.querySelector(".log-state");
  const follow = box.querySelector("input.follow");
  const pause = box.querySelector("button.pause");
  let paused = false;
  let held = [];
  const MAX = 2000000; // characters kept on the page per node

  function append(text) {
    out.append(document.createTextNode(text));
    if (out.textContent.length > MAX) {
      out.textContent = out.textContent.slice(-MAX / 2);
    }
    if (follow.checked) {
      out.scrollTop = out.scrollHeight;
    }
  }
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "resume" : "pause";
    box.dataset.paused = paused ? "1" : "";
    if (!paused) {
      append(held.join(""));
      held = [];
    }
  });
  const es = new EventSource(box.dataset.stream);
  es.addEventListener("open", () => { state.textContent = "live"; });
  es.addEventListener("chunk", (ev) => {
    const c = JSON.parse(ev.data);
    if (paused) {
      held.push(c.data);
    } else {
      append(c.data);
    }
  });
  es.addEventListener("end", () => {
    state.textContent = "ended";
    box.dataset.ended = "1";
    es.close();
  });
  es.addEventListener("failure", (ev) => {
    state.textContent = "error: " + JSON.parse(ev.data).message;
    es.close();
  });
  es.addEventListener("error", () => {
    if (es.readyState === EventSource.CONNECTING) {
      state.textContent = "reconnecting";
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("section.logs[data-stream]").forEach(followLogs);
});
