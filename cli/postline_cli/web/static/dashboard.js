// The dashboard's live figures: every few seconds, fetch this page again and, when anything in its <main> changed,
// put the new <main> in place of the old one. The server draws every figure; nothing is computed here.
"use strict";

const REFRESH_SECONDS = 5;

async function refresh() {
  const updated = document.getElementById("updated");
  try {
    const response = await fetch(window.location.href, { cache: "no-store" });
    if (!response.ok) {
      throw new Error(`the server answered ${response.status}`);
    }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const current = document.querySelector("main");
    const next = fresh.querySelector("main");
    if (next && next.innerHTML !== current.innerHTML) {
      current.replaceWith(document.adoptNode(next));
    }
    updated.textContent = fresh.getElementById("updated").textContent;
    updated.classList.remove("stale");
  } catch (error) {
    updated.textContent = `not updating (${error.message}): is postline dashboard still running?`;
    updated.classList.add("stale");
  }
  window.setTimeout(refresh, REFRESH_SECONDS * 1000);
}

window.setTimeout(refresh, REFRESH_SECONDS * 1000);
