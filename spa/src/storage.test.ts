import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL(".", import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      return sourceFiles(path);
    }
    return /\.tsx?$/.test(entry.name) && !entry.name.includes(".test.") ? [path] : [];
  });
}

function withoutComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

describe("the SPA keeps nothing in the browser", () => {
  const files = sourceFiles(SRC);

  it("finds the sources it checks", () => {
    expect(files.length).toBeGreaterThan(5);
  });

  it("never uses web storage, IndexedDB or JS-readable cookies", () => {
    for (const file of files) {
      const code = withoutComments(readFileSync(file, "utf8"));
      expect(code, file).not.toMatch(/localStorage|sessionStorage|indexedDB|document\.cookie|caches\./);
    }
  });

  it("uses no inline styles, which the page's CSP (style-src 'self') would block", () => {
    for (const file of files) {
      const code = withoutComments(readFileSync(file, "utf8"));
      expect(code, file).not.toMatch(/\bstyle=\{|dangerouslySetInnerHTML|\.innerHTML\s*=|\beval\(|new Function\(/);
    }
  });
});
