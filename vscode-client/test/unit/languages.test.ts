import assert from "node:assert/strict";
import { test } from "node:test";

import { activationEvents, documentSelector, LANGUAGE_IDS } from "../../src/languages";
import { readManifest } from "./manifest";

test("every language is selected for saved and untitled documents", () => {
  const selector = documentSelector();
  assert.equal(selector.length, LANGUAGE_IDS.length * 2);
  for (const language of LANGUAGE_IDS) {
    assert.deepEqual(
      selector.filter((f) => f.language === language).map((f) => f.scheme),
      ["file", "untitled"],
    );
  }
});

test("package.json activates on exactly the selected languages", () => {
  assert.deepEqual(readManifest().activationEvents, activationEvents());
});

test("the languages the server completes are all present", () => {
  for (const id of ["python", "typescriptreact", "shellscript", "csharp", "rust"]) {
    assert.ok((LANGUAGE_IDS as readonly string[]).includes(id), id);
  }
});
