// The dashboard refreshes its panel in place every few seconds (no full reload, so scrolling and the
// sidebar stay put). Paused while the tab is hidden or when the operator presses "Pause".
(function () {
    "use strict";
    const root = document.getElementById("console-dashboard");
    if (!root) {
        return;
    }
    const panel = document.getElementById("console-panel");
    const toggle = document.getElementById("console-refresh-toggle");
    const every = Math.max(parseInt(root.dataset.refresh, 10) || 10, 2) * 1000;
    let paused = false;

    async function refresh() {
        if (paused || document.hidden) {
            return;
        }
        try {
            const response = await fetch(root.dataset.panelUrl, {credentials: "same-origin", cache: "no-store"});
            // A redirect means the session ended (login page): leave the last figures and mark them stale.
            if (!response.ok || response.redirected) {
                throw new Error("HTTP " + response.status);
            }
            panel.innerHTML = await response.text();
            root.classList.remove("stale");
        } catch (error) {
            root.classList.add("stale");
        }
    }

    toggle.addEventListener("click", function () {
        paused = !paused;
        toggle.textContent = paused ? "Resume" : "Pause";
        toggle.setAttribute("aria-pressed", String(paused));
        if (!paused) {
            refresh();
        }
    });
    document.addEventListener("visibilitychange", refresh);
    window.setInterval(refresh, every);
})();
