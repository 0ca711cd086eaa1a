// Writes the browser builds: dist/kasagi.browser.js, the client and MessagePack in one ES
// module that a page can import without a bundler, and dist/demo/, the demo page with it.
import { build } from "esbuild";
import { cpSync } from "node:fs";

await build({
  entryPoints: ["src/index.ts"],
  outfile: "dist/kasagi.browser.js",
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  logLevel: "warning",
});
cpSync("demo", "dist/demo", { recursive: true });
cpSync("dist/kasagi.browser.js", "dist/demo/kasagi.browser.js");
