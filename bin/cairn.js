#!/usr/bin/env node
// The oldest Node.js Cairn runs on (package.json engines). Checked before anything is loaded:
// on an older Node, native modules built for a supported one can crash the process with no message.
const FLOOR = "22.13.0";
const older = (a, b) => {
  const [x, y] = [a, b].map((v) => v.split(".").map(Number));
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] < y[i];
  return false;
};
if (older(process.versions.node, FLOOR)) {
  process.stderr.write(
    `cairn: Cairn needs Node.js ${FLOOR} or newer; this is ${process.version} (${process.execPath}). ` +
      `Put a newer node first on PATH (bash scripts/node.sh prints the lines that do) and run it again.\n`,
  );
  process.exit(1);
}

const { restartWithNursery } = await import("../dist/cli/nursery.js");
const argv = process.argv.slice(2);
// Data commands continue in a node with a small young generation (cli/nursery.ts); this returns only for the others.
restartWithNursery(argv);
const { run } = await import("../dist/cli/main.js");
run(argv);
