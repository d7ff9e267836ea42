import { defineConfig } from "vite";
import solid from "vite-plugin-solid";

// `npm run build` builds this into ui/dist, which build/embed-ui.ts embeds into the binary.
// `node_modules/.bin/vite ui` serves it with hot reload against a server on :8080 (npm start).
const server = "http://127.0.0.1:8080";

export default defineConfig({
  root: import.meta.dirname,
  plugins: [solid()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 700,
  },
  // No changeOrigin: the Host header stays the dev server's, so it matches the Origin of writes
  // (the admin API refuses cross-origin writes).
  server: { proxy: { "/admin/api": server, "/health": server } },
});
