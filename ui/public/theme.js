// Runs before the first paint: the stored theme ("dark" | "light" | "system"), dark by default.
(function () {
  var pref = "dark";
  try { pref = localStorage.getItem("atlashub.theme") || "dark"; } catch (e) {}
  var dark = pref === "system" ? !window.matchMedia || window.matchMedia("(prefers-color-scheme: dark)").matches : pref !== "light";
  document.documentElement.setAttribute("data-theme", dark ? "dark" : "light");
})();
