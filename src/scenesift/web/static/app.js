// scenesift web app: small progressive enhancements (the pages work without them).
"use strict";

// Show or hide ground-truth / predicted boxes on the frame image.
function setupBoxToggles() {
  const viewer = document.getElementById("viewer");
  if (!viewer) return;
  document.querySelectorAll("input[data-toggle]").forEach((box) => {
    const apply = () => viewer.classList.toggle("hide-" + box.dataset.toggle, !box.checked);
    box.addEventListener("change", apply);
    apply();
  });
}

// Class activation map overlay: fetched (and computed server-side) on first use.
function setupCam() {
  const select = document.getElementById("cam-select");
  const layer = document.getElementById("cam-layer");
  const status = document.getElementById("cam-status");
  if (!select || !layer) return;
  select.addEventListener("change", () => {
    const situation = select.value;
    if (!situation) {
      layer.hidden = true;
      return;
    }
    status.textContent = "computing the map for " + situation + "…";
    layer.onload = () => {
      layer.hidden = false;
      status.textContent = "where the latest tagger sees " + situation;
    };
    layer.onerror = () => {
      layer.hidden = true;
      status.textContent = "no map for " + situation + " (see the server log)";
    };
    layer.src = "/frames/" + select.dataset.frame + "/cam?situation=" + encodeURIComponent(situation);
  });
}

function bumpCount(review, delta) {
  const badge = document.querySelector("[data-count='" + review + "']");
  if (!badge) return;
  const n = parseInt(badge.dataset.n, 10) + delta;
  badge.dataset.n = n;
  badge.textContent = n + " " + review;
}

// Review buttons: record the verdict without leaving the page.
function setupReview() {
  document.querySelectorAll("form.review-form").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = event.submitter;
      const row = form.closest("tr");
      const verdict = button.value;
      const url = "/api/rounds/" + row.dataset.round + "/picks/" + row.dataset.frame;
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ review: verdict }),
      });
      const badge = row.querySelector("[data-review]");
      if (response.ok) {
        bumpCount(badge.textContent.trim(), -1);
        bumpCount(verdict, +1);
        badge.textContent = verdict;
        badge.className = "badge review-" + verdict;
      } else {
        const body = await response.json().catch(() => ({}));
        badge.textContent = "error: " + (body.detail || response.status);
      }
    });
  });
}

function setupBack() {
  document.querySelectorAll("a[data-back]").forEach((a) => {
    if (history.length > 1) {
      a.addEventListener("click", (event) => {
        event.preventDefault();
        history.back();
      });
    }
  });
}

// The review page's round chooser shows the chosen round at once.
function setupRoundChooser() {
  const select = document.getElementById("round-select");
  if (select) select.addEventListener("change", () => select.form.submit());
}

document.addEventListener("DOMContentLoaded", () => {
  setupRoundChooser();
  setupBoxToggles();
  setupCam();
  setupReview();
  setupBack();
});
