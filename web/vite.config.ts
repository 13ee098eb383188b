import { defineConfig } from "vite";

// The build goes into the gateway's module (go:embed reaches only files below
// it); the gateway serves it at / (gateway/internal/server/webclient.go).
// JSX is compiled by esbuild for Preact, so no Babel plugin is needed.
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "../gateway/webdist/dist",
    emptyOutDir: true,
    // No inline script or data: module under the gateway's CSP.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    target: "es2020",
  },
  server: { proxy: { "/v1": "http://127.0.0.1:8080" } },
});
