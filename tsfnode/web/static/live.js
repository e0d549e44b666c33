// A page that follows what happens (web/live.py): while the tab is shown, ask every few
// seconds whether what this person may see has changed (an unchanged answer is a 304 of
// a few hundred bytes); if it has, fetch the page again and put its new content in
// place, unless the person is typing in it (then ask again later). Without JavaScript
// the page is the same, reloaded by hand.
"use strict";
(() => {
  const script = document.getElementById("live");
  const every = 1000 * Number(script.dataset.poll || 15);
  let version = script.dataset.version;
  let timer = null;

  const typing = () => {
    const fields = document.querySelectorAll("main textarea, main input[type=text], main input[type=number]");
    return [...fields].some((f) => f.value !== f.defaultValue);
  };

  const refresh = async () => {
    const url = new URL(window.location.href);
    url.searchParams.delete("done"); // said once, when it was done
    const answer = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (!answer.ok) return false;
    const fresh = new DOMParser().parseFromString(await answer.text(), "text/html").querySelector("main");
    const main = document.querySelector("main");
    if (!fresh || !main || typing()) return false;
    const open = [...main.querySelectorAll("details[id]")].filter((d) => d.open).map((d) => d.id);
    main.replaceWith(document.adoptNode(fresh));
    for (const id of open) {
      const details = document.getElementById(id);
      if (details) details.open = true;
    }
    document.dispatchEvent(new CustomEvent("tsf:updated"));
    return true;
  };

  const schedule = () => {
    if (timer === null && !document.hidden) timer = window.setTimeout(ask, every);
  };

  async function ask() {
    timer = null;
    if (document.hidden) return;
    try {
      const answer = await fetch("/web/live", {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "If-None-Match": `"${version}"` },
      });
      if (answer.status === 200) {
        const { v } = await answer.json();
        if (v !== version && !typing() && (await refresh())) version = v;
      }
    } catch (e) {
      // the line is down or the node restarting: ask again at the next turn
    }
    schedule();
  }

  document.addEventListener("visibilitychange", () => {
    window.clearTimeout(timer);
    timer = null;
    if (!document.hidden) ask(); // back on the tab: what changed meanwhile, at once
  });
  schedule();
})();
