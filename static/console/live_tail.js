// The execution page follows a pending or running run: new log lines and progress appear as they arrive
// (polling the tail endpoint, GET /api/v1/executions/{id}/logs), and following stops once the run is final.
// Loaded in the page's head (the admin's form media): it starts once the document is parsed.
function startLiveTail() {
    "use strict";
    const root = document.getElementById("live-tail");
    if (!root) {
        return;
    }
    const logs = document.getElementById("live-logs");
    const state = document.getElementById("live-tail-state");
    const progress = document.getElementById("live-progress");
    const step = document.getElementById("live-step");
    const url = root.dataset.url + "?lines=" + encodeURIComponent(root.dataset.lines || "2000");
    const ACTIVE = ["pending", "running"];
    const EVERY_MS = 1000;
    let timer = null;

    function atBottom() {
        return logs.scrollHeight - logs.scrollTop - logs.clientHeight < 24;
    }

    function show(tail) {
        const follow = atBottom();
        const text = (tail.truncated ? "[... earlier lines truncated ...]\n" : "") + tail.lines.join("\n");
        if (logs.textContent !== text) {
            logs.textContent = text;
            if (follow) {
                logs.scrollTop = logs.scrollHeight;
            }
        }
        if (tail.progress_percent !== null && tail.progress_percent !== undefined) {
            progress.value = tail.progress_percent;
        }
        step.textContent = tail.progress_step || "";
        root.dataset.status = tail.status;
        if (ACTIVE.includes(tail.status)) {
            state.textContent = "following new lines while the run is " + tail.status;
        } else {
            state.textContent = "the run ended: " + tail.status + " (reload for its result)";
            window.clearInterval(timer);
        }
    }

    async function poll() {
        if (document.hidden) {
            return;
        }
        try {
            const response = await fetch(url, {credentials: "same-origin", cache: "no-store",
                                               headers: {"Accept": "application/json"}});
            if (!response.ok) {
                throw new Error("HTTP " + response.status);
            }
            show((await response.json()).data);
            root.classList.remove("stale");
        } catch (error) {
            root.classList.add("stale");
            state.textContent = "not updating (" + error.message + "), retrying";
        }
    }

    timer = window.setInterval(poll, EVERY_MS);
    poll();
}

if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startLiveTail);
} else {
    startLiveTail();
}
