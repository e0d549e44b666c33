// The report editor: choosing a template puts its headings in the findings, unless the
// reader has already written there (then it asks first).
"use strict";
(() => {
  const choice = document.getElementById("template");
  const findings = document.getElementById("findings");
  if (!choice || !findings) return;
  const templates = JSON.parse(document.getElementById("templates").textContent);
  let shown = findings.value;
  choice.addEventListener("change", () => {
    const written = findings.value.trim() && findings.value !== shown;
    if (written && !window.confirm(choice.options[choice.selectedIndex].text)) return;
    findings.value = shown = templates[choice.value] || "";
  });
})();
