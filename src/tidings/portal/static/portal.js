// The portal's own script: small conveniences; every page works without it.
// (No inline script anywhere: the Content-Security-Policy allows only files like this.)
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(() => {
      button.dataset.copied = "true";
      button.textContent = button.dataset.copiedLabel || "Copied";
    });
  }
});

// A form sent once: its submit buttons wait for the answer (a double click sends once;
// the server's idempotency key makes sure of it anyway).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.method.toLowerCase() !== "post") return;
  window.setTimeout(() => {
    form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; });
  }, 0);
});

// A CSV's first rows, shown before it is sent: what the file holds, read in the browser.
const PREVIEW_ROWS = 5;
document.addEventListener("change", (event) => {
  const input = event.target;
  if (!input.dataset || !input.dataset.preview || !input.files || !input.files[0]) return;
  const target = document.getElementById(input.dataset.preview);
  input.files[0].slice(0, 64 * 1024).text().then((text) => {
    const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
    const table = document.createElement("table");
    table.className = "data";
    lines.slice(0, PREVIEW_ROWS + 1).forEach((line, i) => {
      const row = table.insertRow();
      line.split(",").forEach((cell) => {
        const box = document.createElement(i === 0 ? "th" : "td");
        box.textContent = cell.replace(/^"|"$/g, "");
        row.appendChild(box);
      });
    });
    const caption = table.createCaption();
    caption.textContent = `First rows of ${input.files[0].name}`;
    target.replaceChildren(table);
  });
});

// The upload's progress: htmx sends the form (hx-post) and reports how much has left.
document.addEventListener("htmx:xhr:progress", (event) => {
  const form = event.target.closest("form[data-progress]");
  const bar = form && document.getElementById(form.dataset.progress);
  if (!bar || !event.detail.lengthComputable) return;
  bar.hidden = false;
  bar.value = Math.round((100 * event.detail.loaded) / event.detail.total);
});
