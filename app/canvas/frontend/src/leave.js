import { useEffect, useRef } from "react";

// Leaving the Design page with unsaved canvas edits asks first. The component's frame is served by the studio
// itself (same origin), so it can watch the studio's own navigation (sidebar and page links) in the parent page:
// a click there while the canvas is dirty opens "Save / Discard / Keep editing / Leave, keep edits for later"
// over the whole studio, and the chosen action is sent to Python, which saves, discards or keeps the draft and
// then switches to the page the user asked for.
// A reload or closing the tab gets the browser's own "leave site?" prompt.
const LINKS = '[data-testid="stSidebarNav"] a[href], a[data-testid="stPageLink-NavLink"][href]';

function host() {
  try {
    return window.parent && window.parent !== window && window.parent.document ? window.parent : null;
  } catch {
    return null; // another origin: only this frame's own beforeunload is possible
  }
}

// The studio page a link leads to, as Streamlit's url path ("" is the default page).
export function pagePath(href) {
  try {
    const parts = new URL(href, window.location.href).pathname.split("/").filter(Boolean);
    return parts.length ? parts[parts.length - 1] : "";
  } catch {
    return "";
  }
}

function dialog(doc, { title, text, onSave, onDiscard, onKeep, onLater }) {
  const old = doc.getElementById("ts-leave-dialog");
  if (old) old.remove();
  const shade = doc.createElement("div");
  shade.id = "ts-leave-dialog";
  shade.setAttribute("data-testid", "ts-leave-dialog");
  shade.setAttribute("role", "dialog");
  shade.setAttribute("aria-label", title);
  Object.assign(shade.style, {
    position: "fixed", inset: "0", background: "rgba(15,23,42,0.45)", zIndex: "1000010", display: "flex",
    alignItems: "center", justifyContent: "center", fontFamily: "inherit",
  });
  const box = doc.createElement("div");
  Object.assign(box.style, {
    background: "#fff", color: "#0f172a", borderRadius: "10px", padding: "20px 22px", maxWidth: "600px",
    boxShadow: "0 10px 30px rgba(0,0,0,0.25)", borderTop: "4px solid #d97706",
  });
  const h = doc.createElement("div");
  h.textContent = `⚠ ${title}`;
  Object.assign(h.style, { fontWeight: "700", fontSize: "17px", marginBottom: "8px" });
  const p = doc.createElement("div");
  p.textContent = text;
  Object.assign(p.style, { fontSize: "14px", lineHeight: "1.45", marginBottom: "16px" });
  const row = doc.createElement("div");
  Object.assign(row.style, { display: "flex", gap: "8px", justifyContent: "flex-end" });
  const button = (label, primary, fn) => {
    const b = doc.createElement("button");
    b.textContent = label;
    Object.assign(b.style, {
      font: "inherit", fontSize: "14px", padding: "7px 14px", borderRadius: "7px", cursor: "pointer", whiteSpace: "nowrap",
      border: primary ? "1px solid #ff4b4b" : "1px solid #cbd5e1", background: primary ? "#ff4b4b" : "#fff",
      color: primary ? "#fff" : "#0f172a", fontWeight: primary ? "600" : "400",
    });
    b.addEventListener("click", () => { shade.remove(); fn(); });
    row.appendChild(b);
    return b;
  };
  button("Keep editing", false, onKeep);
  button("Leave, keep edits for later", false, onLater).title = "Switch page now; the edits wait here, unsaved, in this browser tab";
  button("Discard changes", false, onDiscard);
  button("Save version", true, onSave).focus();
  box.append(h, p, row);
  shade.appendChild(box);
  doc.body.appendChild(shade);
  return () => shade.remove();
}

// Install the guard; `state()` returns { dirty, title, text }; returns the cleanup function.
export function guardLeaving(state, { onSave, onDiscard, onLater }) {
  const top = host();
  let close = null;
  // Streamlit removes the frame of a canvas it no longer draws (after a save, the next version's canvas takes its
  // place) without running this frame's effect clean-ups: a guard whose frame is gone removes itself instead of
  // asking about edits that were saved.
  const alive = () => {
    try {
      return !top || (!!window.frameElement && window.frameElement.isConnected);
    } catch {
      return true;
    }
  };
  const onClick = (ev) => {
    if (!alive()) { cleanup(); return; }
    const a = ev.target?.closest?.(LINKS);
    if (!a || !state().dirty || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    ev.stopPropagation();
    const then = pagePath(a.getAttribute("href"));
    const s = state();
    close = dialog(top.document, {
      title: s.title, text: s.text,
      onSave: () => onSave(then), onDiscard: () => onDiscard(then), onKeep: () => {}, onLater: () => onLater(then),
    });
  };
  const onUnload = (ev) => {
    if (!alive()) { cleanup(); return undefined; }
    if (!state().dirty) return undefined;
    ev.preventDefault();
    ev.returnValue = ""; // the browser shows its own "leave site?" text
    return "";
  };
  const windows = top ? [top, window] : [window];
  if (top) top.addEventListener("click", onClick, true);
  windows.forEach((w) => w.addEventListener("beforeunload", onUnload));
  function cleanup() {
    if (top) top.removeEventListener("click", onClick, true);
    windows.forEach((w) => w.removeEventListener("beforeunload", onUnload));
    if (close) close();
  }
  return cleanup;
}

// The hook: `state` ({ dirty, title, text }) and the actions are read when the user clicks, never stale.
export function useLeaveGuard(enabled, state, actions) {
  const latest = useRef({ state, actions });
  latest.current = { state, actions };
  useEffect(() => {
    if (!enabled) return undefined;
    return guardLeaving(() => latest.current.state, {
      onSave: (then) => latest.current.actions.onSave(then),
      onDiscard: (then) => latest.current.actions.onDiscard(then),
      onLater: (then) => latest.current.actions.onLater(then),
    });
  }, [enabled]);
}
