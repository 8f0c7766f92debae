#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript under dist/.
import('../dist/src/cli/main.js')
  .then((m) => m.main(process.argv))
  .catch((err) => {
    console.error(`uxnet: ${err && err.message ? err.message : err}`);
    process.exit(1);
  });
