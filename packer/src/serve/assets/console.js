// packer console: the little script there is. Live job progress (polls /api/job while a job
// runs) and the typed confirmation of delete (the server checks it again).
"use strict";
(function () {
  const box = document.getElementById("job");
  if (box) {
    const $ = (id) => document.getElementById(id);
    const render = (j) => {
      const state = j.id === 0 ? "no job started from this console yet"
        : j.running ? j.kind + " running" : (j.ok ? j.kind + " finished: ok" : j.kind + " FAILED");
      $("job-state").textContent = state;
      $("job-step").textContent = j.running ? j.step + (j.item ? ": " + j.item : "") : "";
      const bar = $("job-bar");
      if (j.total) { bar.max = j.total; bar.value = Math.min(j.done, j.total); }
      else if (j.running) { bar.removeAttribute("value"); }
      else { bar.max = 1; bar.value = 1; }
      $("job-outcome").textContent = j.outcome || "";
      $("job-log").textContent = j.log.join("\n");
      const link = $("job-link");
      link.textContent = "";
      if (!j.running && j.bundle_id) {
        const a = document.createElement("a");
        a.href = "/bundles/" + j.bundle_id;
        a.id = "job-bundle";
        a.textContent = "open bundle " + j.bundle_id;
        link.appendChild(a);
      }
      box.dataset.running = String(j.running);
      box.dataset.ok = String(j.ok);
    };
    const tick = async () => {
      try {
        const r = await fetch("/api/job", { credentials: "same-origin" });
        if (r.ok) {
          const j = await r.json();
          render(j);
          if (!j.running) return;
        }
      } catch (e) { /* the next tick tries again */ }
      setTimeout(tick, 500);
    };
    tick();
  }
  const confirm = document.getElementById("confirm");
  if (confirm) {
    const button = confirm.form.querySelector("button");
    const check = () => { button.disabled = confirm.value !== confirm.dataset.expected; };
    confirm.addEventListener("input", check);
    check();
  }
})();
