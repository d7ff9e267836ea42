import { createSignal } from "solid-js";

// Dark by default; "system" follows the OS. public/theme.js applies the stored choice before the first paint.
export type ThemePref = "dark" | "light" | "system";
const KEY = "atlashub.theme";

function stored(): ThemePref {
  try {
    const v = localStorage.getItem(KEY);
    if (v === "light" || v === "system" || v === "dark") return v;
  } catch {}
  return "dark";
}

const media = window.matchMedia?.("(prefers-color-scheme: dark)");
const [pref, setPref] = createSignal<ThemePref>(stored());

function apply() {
  const p = pref();
  const dark = p === "system" ? (media?.matches ?? true) : p === "dark";
  document.documentElement.setAttribute("data-theme", dark ? "dark" : "light");
}
media?.addEventListener("change", () => pref() === "system" && apply());
apply();

export const themePref = pref;
export function setTheme(p: ThemePref) {
  setPref(p);
  try {
    localStorage.setItem(KEY, p);
  } catch {}
  apply();
}
const ORDER: ThemePref[] = ["dark", "light", "system"];
export function cycleTheme() {
  setTheme(ORDER[(ORDER.indexOf(pref()) + 1) % ORDER.length]!);
}
