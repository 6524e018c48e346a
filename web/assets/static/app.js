// Refreshes the tab every 5 s: the server renders the figures and charts
// (the page works without this script, only not live).
"use strict";
(function () {
  const main = document.getElementById("main");
  if (!main) return;
  async function refresh() {
    if (document.hidden) return;
    // Skip while the owner types into a form.
    if (main.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    try {
      const r = await fetch(location.pathname, { headers: { "X-Ore-Partial": "1" }, credentials: "same-origin" });
      if (r.status === 401) { location.reload(); return; }
      if (r.ok) main.innerHTML = await r.text();
    } catch (e) { /* the daemon restarts: try again next time */ }
  }
  setInterval(refresh, 5000);
})();
