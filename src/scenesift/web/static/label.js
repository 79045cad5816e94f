// The labelling page: situation checkboxes (exclusive within a group), keyboard
// shortcuts, save with the label version the page read (a stale save gets HTTP 409).
"use strict";

(function () {
  const form = document.getElementById("label-form");
  if (!form) return;
  const status = document.getElementById("status");
  const nameInput = document.getElementById("labeller");
  const versionInput = document.getElementById("label-version");
  const boxes = Array.from(form.querySelectorAll("input[name=situation]"));
  let dirty = false;
  let leaveWarned = false;
  let saving = false;

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

  // Radio-like groups that can also be cleared: choosing one member clears the others.
  boxes.forEach((box) => {
    box.addEventListener("change", () => {
      if (box.checked && box.dataset.group) {
        boxes.forEach((other) => {
          if (other !== box && other.dataset.group === box.dataset.group) other.checked = false;
        });
      }
      markDirty();
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
    try {
      const response = await fetch("/api/frames/" + form.dataset.frame + "/labels", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          label_version: parseInt(versionInput.value, 10),
          labeller: labeller,
          situations: values(),
        }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        versionInput.value = body.label_version;
        form.dataset.version = body.label_version;
        dirty = false;
        const badge = document.getElementById("state-badge");
        badge.textContent = "labelled";
        badge.className = "badge state-labelled";
        say("Saved: version " + body.label_version + " by " + body.labeller + " at " + body.saved_at, "ok");
        return true;
      }
      const detail = typeof body.detail === "string" ? body.detail
        : (body.detail || []).map((e) => e.msg || JSON.stringify(e)).join("; ");
      say((response.status === 409 ? "Not saved (conflict): " : "Not saved: ") + (detail || response.status), "error");
      return false;
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
        box.checked = !box.checked;
        box.dispatchEvent(new Event("change"));
      }
    }
  });
})();
