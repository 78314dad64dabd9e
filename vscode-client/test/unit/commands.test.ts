import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

import { readManifest, ROOT } from "./manifest";

test("every contributed command is registered by the extension and vice versa", () => {
  const source = fs.readFileSync(path.join(ROOT, "src", "extension.ts"), "utf8");
  const registered = [...source.matchAll(/"(codellama\.[A-Za-z]+)": \(\)/g)].map((m) => m[1]).sort();
  const contributed = readManifest().contributes.commands.map((c) => c.command).sort();
  assert.deepEqual(registered, contributed);
  assert.deepEqual(contributed, [
    "codellama.disable",
    "codellama.enable",
    "codellama.restartServer",
    "codellama.serverActions",
    "codellama.showLastPrompt",
    "codellama.showLog",
    "codellama.toggle",
  ]);
});

test("the manifest points at the bundle", () => {
  assert.equal(readManifest().main, "./dist/extension.js");
});
