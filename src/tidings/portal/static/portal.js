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
