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

// uploadWorkdir sends the files of the directory chosen in the deploy form, each named by its
// path below that directory, and keeps the archive's hash in the form's hidden field. The
// server packs them as `iog launch --workdir` does; the page shows progress and the answer.
function uploadWorkdir(box) {
  const input = box.querySelector("input[type=file]");
  const hidden = box.querySelector("input[type=hidden]");
  const state = box.querySelector(".upload-state");
  const bar = box.querySelector("progress");
  const csrf = document.querySelector("#deploy input[name=csrf]").value;
  input.addEventListener("change", () => {
    const files = Array.from(input.files);
    hidden.value = "";
    box.dataset.done = "";
    if (files.length === 0) {
      state.textContent = "";
      return;
    }
    const body = new FormData();
    for (const f of files) {
      // "chosen/sub/file.py" -> "sub/file.py": the directory's contents, as iog launch packs.
      const rel = f.webkitRelativePath ? f.webkitRelativePath.split("/").slice(1).join("/") : f.name;
      body.append("file", f, rel);
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", box.dataset.action);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    bar.hidden = false;
    bar.value = 0;
    state.textContent = "uploading " + files.length + " files";
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) {
        bar.max = ev.total;
        bar.value = ev.loaded;
        state.textContent = "uploading " + files.length + " files: " + Math.floor(100 * ev.loaded / ev.total) + "%";
      }
    });
    xhr.addEventListener("load", () => {
      let a = {};
      try {
        a = JSON.parse(xhr.responseText);
      } catch (e) {
        a = { message: "HTTP " + xhr.status + " (reload the page and try again)" };
      }
      if (xhr.status === 200 && a.hash) {
        hidden.value = a.hash;
        state.textContent = "uploaded: " + a.files + " files, " + a.bytes + " bytes, packed to " + a.packed +
          " (sha256 " + a.hash.slice(0, 12) + "…)";
        box.dataset.done = "1";
        hidden.dispatchEvent(new Event("change", { bubbles: true }));
      } else {
        state.textContent = "not uploaded: " + (a.message || "HTTP " + xhr.status);
        box.dataset.done = "error";
      }
    });
    xhr.addEventListener("error", () => {
      state.textContent = "not uploaded: the connection failed";
      box.dataset.done = "error";
    });
    xhr.send(body);
  });
}

// loadTaskFile puts a task file chosen from disk into the task field, as if pasted.
function loadTaskFile(input) {
  const area = document.getElementById("f-task");
  const state = document.getElementById("task-file-state");
  input.addEventListener("change", () => {
    const f = input.files[0];
    if (!f) {
      return;
    }
    if (f.size > 65536) {
      state.textContent = "a task file is at most 64 KiB";
      return;
    }
    f.text().then((text) => {
      area.value = text;
      state.textContent = "loaded " + f.name;
      area.dispatchEvent(new Event("change", { bubbles: true }));
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("section.logs[data-stream]").forEach(followLogs);
  document.querySelectorAll("#workdir-box").forEach(uploadWorkdir);
  document.querySelectorAll("#f-task-file").forEach(loadTaskFile);
});
