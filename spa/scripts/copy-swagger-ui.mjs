// Copies the few Swagger UI files the API docs page (/api/docs) loads into dist/swagger-ui/, so
// nginx serves them from our own origin: no CDN (a third-party script on a page that signs in is a
// supply-chain risk, and many networks cannot reach one) and nothing the CSP `script-src 'self'`
// would refuse. Everything else swagger-ui-dist ships stays out of the build: its index.html and
// swagger-initializer.js configure the UI inline or for the petstore demo, and the ES bundles and
// source maps are not used. LICENSE and NOTICE travel with the code (Apache-2.0 asks for that).
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const FILES = [
  "swagger-ui-bundle.js",
  "swagger-ui.css",
  // The page the identity provider returns the popup to loads this external script (no inline code).
  "oauth2-redirect.js",
  "LICENSE",
  "NOTICE",
];

const spaRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const packageDir = dirname(require.resolve("swagger-ui-dist/package.json"));
const version = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")).version;
const target = join(spaRoot, "dist", "swagger-ui");

rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
for (const name of FILES) {
  copyFileSync(join(packageDir, name), join(target, name));
}
console.log(`swagger-ui-dist ${version}: copied ${FILES.length} files to dist/swagger-ui/`);
