// The labelling page: situation checkboxes, radio buttons within an exclusive group (only
// the group's "unset" button leaves it unlabelled), keyboard shortcuts, save with the label
// version the page read (a stale save gets HTTP 409; a busy catalog 503, retried).
"use strict";

(function () {
  const form = document.getElementById("label-form");
  if (!form) return;
  const status = document.getElementById("status");
  const nameInput = document.getElementById("labeller");
  const versionInput = document.getElementById("label-version");
  const boxes = Array.from(form.querySelectorAll("input[data-situation]"));
  let dirty = false;
  let leaveWarned = false;
  let saving = false;
  const MAX_ATTEMPTS = 6;

  const COOKIE = "scenesift_labeller";
  if (!nameInput.value) nameInput.value = localStorage.getItem(COOKIE) || "";

  function say(text, kind) {
    status.textContent = text;
    status.className = "status" + (kind ? " " + kind : "");
  }

  function markDirty() {
    dirty = true;
    leaveWarned = false;
    say("unsaved changes", "pending");
  }

  function groupLabel(group) {
    return group.replace(/_/g, " ");
  }

  boxes.forEach((box) => box.addEventListener("change", markDirty));

  // The groups that had a choice when the page opened (or at the last save).
  function chosenGroups() {
    return new Set(boxes.filter((b) => b.dataset.group && b.checked).map((b) => b.dataset.group));
  }
  let labelledGroups = chosenGroups();

  // Unsetting a group is its own action, and the page says what a save will do.
  form.querySelectorAll("button[data-clear]").forEach((button) => {
    button.addEventListener("click", () => {
      const group = button.dataset.clear;
      const members = boxes.filter((b) => b.dataset.group === group);
      if (!members.some((b) => b.checked)) {
        say(groupLabel(group) + " is already unlabelled", "pending");
        return;
      }
      members.forEach((b) => (b.checked = false));
      markDirty();
      say(groupLabel(group) + " unset: it will be saved as unlabelled (no " +
          groupLabel(group) + " label)", "pending");
    });
  });

  function values() {
    const out = {};
    const groups = {};
    boxes.forEach((box) => {
      if (box.dataset.group) {
        (groups[box.dataset.group] = groups[box.dataset.group] || []).push(box);
      } else {
        out[box.value] = box.checked;
      }
    });
    // A group with nothing chosen stays unlabelled (missing is not negative).
    Object.values(groups).forEach((members) => {
      if (members.some((b) => b.checked)) members.forEach((b) => (out[b.value] = b.checked));
    });
    return out;
  }

  async function save() {
    if (saving) return false;
    const labeller = nameInput.value.trim();
    if (!labeller) {
      say("enter your name first: it is recorded with every save", "error");
      nameInput.focus();
      return false;
    }
    localStorage.setItem(COOKIE, labeller);
    document.cookie = COOKIE + "=" + encodeURIComponent(labeller) + "; path=/; max-age=31536000; SameSite=Strict";
    saving = true;
    say("saving…", "pending");
    const body = JSON.stringify({
      label_version: parseInt(versionInput.value, 10),
      labeller: labeller,
      situations: values(),
    });
    try {
      // Another process writing the catalog (an import) answers 503 + Retry-After: wait
      // and retry with a growing delay, saying so, instead of losing the labels.
      for (let attempt = 1; ; attempt++) {
        const response = await fetch("/api/frames/" + form.dataset.frame + "/labels", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: body,
        });
        const result = await response.json().catch(() => ({}));
        if (response.status === 503 && attempt < MAX_ATTEMPTS) {
          const after = parseInt(response.headers.get("Retry-After") || "2", 10);
          const wait = Math.min(30, Math.max(after, 2 ** (attempt - 1)));
          say("the catalog is busy (another process is writing); retrying in " + wait +
              " s (attempt " + (attempt + 1) + " of " + MAX_ATTEMPTS + ")…", "pending");
          await new Promise((resolve) => setTimeout(resolve, wait * 1000));
          continue;
        }
        if (response.ok) {
          versionInput.value = result.label_version;
          form.dataset.version = result.label_version;
          dirty = false;
          const badge = document.getElementById("state-badge");
          badge.textContent = "labelled";
          badge.className = "badge state-labelled";
          const now = chosenGroups();
          const unset = Array.from(labelledGroups).filter((g) => !now.has(g)).map(groupLabel);
          labelledGroups = now;
          say("Saved: version " + result.label_version + " by " + result.labeller + " at " + result.saved_at +
              (unset.length ? " (" + unset.join(", ") + " left unlabelled)" : ""), "ok");
          return true;
        }
        const detail = typeof result.detail === "string" ? result.detail
          : (result.detail || []).map((e) => e.msg || JSON.stringify(e)).join("; ");
        const prefix = response.status === 409 ? "Not saved (conflict): "
          : response.status === 503 ? "Not saved (still busy after " + attempt + " tries; press s to try again): "
          : "Not saved: ";
        say(prefix + (detail || response.status), "error");
        return false;
      }
    } catch (err) {
      say("Not saved: the server did not answer (" + err + ")", "error");
      return false;
    } finally {
      saving = false;
    }
  }

  function go(url) {
    if (!url) {
      say("no more frames in this direction of the queue", "pending");
      return;
    }
    if (dirty && !leaveWarned) {
      leaveWarned = true;
      say("unsaved changes: press s to save, or the same key again to leave without saving", "error");
      return;
    }
    window.location.href = url;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  document.getElementById("save-next").addEventListener("click", async () => {
    if (await save()) go(form.dataset.next);
  });

  document.addEventListener("keydown", async (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target instanceof HTMLInputElement && target.type === "text") {
      if (event.key === "Escape" || event.key === "Enter") {
        event.preventDefault();
        target.blur();
      }
      return;
    }
    const key = event.key;
    if (key === "s") {
      event.preventDefault();
      save();
    } else if (key === "Enter") {
      event.preventDefault();
      if (await save()) go(form.dataset.next);
    } else if (key === "n" || key === "ArrowRight") {
      event.preventDefault();
      go(form.dataset.next);
    } else if (key === "p" || key === "ArrowLeft") {
      event.preventDefault();
      go(form.dataset.prev);
    } else if (key === "b") {
      document.querySelectorAll("input[data-toggle]").forEach((t) => {
        t.checked = !t.checked;
        t.dispatchEvent(new Event("change"));
      });
    } else {
      const box = boxes.find((b) => b.dataset.key && b.dataset.key === key.toLowerCase());
      if (box) {
        event.preventDefault();
        if (box.type === "radio") {
          // Like a click on a radio button: choosing the chosen one keeps it.
          if (box.checked) return;
          box.checked = true;
        } else {
          box.checked = !box.checked;
        }
        box.dispatchEvent(new Event("change"));
      }
    }
  });
})();
