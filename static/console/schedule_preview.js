// Live preview on the task form: as the schedule fields change, ask the server for the schedule in words
// and its next five fire times (the same code that computes them for the saved task).
(function () {
    "use strict";
    const FIELDS = ["schedule_type", "cron_expression", "timezone", "interval_seconds",
                    "start_at_0", "start_at_1", "run_at_0", "run_at_1"];
    // The rows each schedule type uses; the others are hidden (unless they show an error).
    const ROWS_BY_TYPE = {
        cron: ["cron_expression", "timezone"],
        interval: ["interval_seconds", "start_at"],
        date: ["run_at"],
        once: [],
    };
    const SCHEDULE_ROWS = ["cron_expression", "timezone", "interval_seconds", "start_at", "run_at"];

    function showRowsFor(form) {
        const select = form.elements.namedItem("schedule_type");
        const wanted = ROWS_BY_TYPE[select ? select.value : "cron"] || SCHEDULE_ROWS;
        for (const name of SCHEDULE_ROWS) {
            const row = form.querySelector(".form-row.field-" + name);
            if (row) {
                row.hidden = !wanted.includes(name) && !row.classList.contains("errors");
            }
        }
    }

    function text(tag, className, content) {
        const node = document.createElement(tag);
        if (className) {
            node.className = className;
        }
        node.textContent = content;
        return node;
    }

    function render(box, data) {
        box.replaceChildren();
        if (data.error) {
            box.append(text("p", "console-preview-error", data.error));
            return;
        }
        box.append(text("p", "console-preview-description", data.description));
        const list = document.createElement("ol");
        list.className = "console-fires";
        if (!data.fires.length) {
            list.append(text("li", "console-quiet", "No upcoming fire time."));
        }
        for (const fire of data.fires) {
            const item = text("li", "", fire.utc);
            if (fire.local) {
                item.append(" ", text("span", "console-quiet", "(" + fire.local + ")"));
            }
            list.append(item);
        }
        box.append(list);
    }

    function start() {
        const box = document.getElementById("schedule-preview");
        const form = document.getElementById("task_form");
        if (!box || !form) {
            return;
        }
        showRowsFor(form);
        let timer = null;
        let latest = 0;
        async function update() {
            const params = new URLSearchParams();
            for (const name of FIELDS) {
                const input = form.elements.namedItem(name);
                if (input && "value" in input) {
                    params.set(name, input.value);
                }
            }
            const request = ++latest;
            try {
                const response = await fetch(box.dataset.url + "?" + params, {credentials: "same-origin"});
                if (response.ok && request === latest) {
                    render(box, await response.json());
                }
            } catch (error) {
                // Keep the last preview; the server checks the schedule again on save.
            }
        }
        form.addEventListener("input", function (event) {
            if (FIELDS.includes(event.target.name)) {
                window.clearTimeout(timer);
                timer = window.setTimeout(update, 300);
            }
        });
        form.addEventListener("change", function (event) {
            if (event.target.name === "schedule_type") {
                showRowsFor(form);
            }
            if (FIELDS.includes(event.target.name)) {
                update();
            }
        });
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
