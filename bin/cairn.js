#!/usr/bin/env node
import { restartWithNursery } from "../dist/cli/nursery.js";

const argv = process.argv.slice(2);
// Data commands continue in a node with a small young generation (cli/nursery.ts); this returns only for the others.
restartWithNursery(argv);
const { run } = await import("../dist/cli/main.js");
run(argv);
