import { defineConfig } from "vitest/config";

// React's JSX goes through esbuild's automatic runtime, so no React plugin is needed (fast refresh is
// the only thing lost, and only in `npm run dev`).
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "dist",
    // The page runs under `script-src 'self'; style-src 'self'`: everything must be a file, nothing
    // inlined as a data: URL or an inline <script>/<style>.
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
    target: "es2022",
    modulePreload: { polyfill: false },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
