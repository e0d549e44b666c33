// The report editor: choosing a template puts its headings in the findings, unless the
// reader has already written there (then it asks first). Listened for on the document,
// so that it still works once live.js has put a fresh copy of the page in place.
"use strict";
(() => {
  let shown = null; // the findings as last filled in here (null: as the page came)
  document.addEventListener("tsf:updated", () => {
    shown = null;
  });
  document.addEventListener("change", (event) => {
    const choice = event.target;
    const findings = document.getElementById("findings");
    const data = document.getElementById("templates");
    if (!(choice instanceof HTMLSelectElement) || choice.id !== "template" || !findings || !data) return;
    const templates = JSON.parse(data.textContent);
    if (shown === null) shown = findings.defaultValue;
    const written = findings.value.trim() && findings.value !== shown;
    if (written && !window.confirm(choice.options[choice.selectedIndex].text)) return;
    findings.value = shown = templates[choice.value] || "";
  });
})();
