import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DOCUMENT_ACTIVE_METHOD,
  documentActiveParams,
  hasPrompt,
  isStatusParams,
  isTodayStats,
  type LastPrompt,
  lastPromptDocument,
  todayLine,
} from "../../src/protocol";

test("status params are checked before use", () => {
  assert.ok(isStatusParams({ state: "ready", message: "m ready" }));
  assert.ok(!isStatusParams({ state: "ready" }));
  assert.ok(!isStatusParams(null));
  assert.ok(!isStatusParams("ready"));
});

const prompt: LastPrompt = {
  uri: "file:///w/a.py",
  position: { line: 1, character: 4 },
  prompt: "<PRE> def add",
  fimOrder: "spm",
  promptTokens: 20,
  reusedTokens: 5,
  contextTokens: 0,
  contextKept: false,
  evaluatedTokens: 15,
  generatedTokens: 2,
  draftedTokens: 0,
  acceptedTokens: 0,
  stopReason: "eot",
  context: [{ path: "b.py", startLine: 3, endLine: 9, source: "import", name: "helper" }],
  completion: " pass",
  ttftMs: 4.2,
  totalMs: 9.9,
  answers: { model: 1 },
};

test("the last prompt document ends with the exact prompt", () => {
  assert.ok(hasPrompt(prompt));
  const text = lastPromptDocument(prompt);
  assert.ok(text.endsWith("\n<PRE> def add"));
  assert.match(text, /position: line 2, character 5/);
  assert.match(text, /completion: " pass"/);
  assert.match(text, /context: b\.py:3-9 \(import helper\)/);
});

test("before any completion there is nothing to show", () => {
  assert.ok(!hasPrompt({ answers: {} }));
  assert.ok(!hasPrompt(null));
  assert.match(lastPromptDocument({ answers: {} }), /No completion/);
});

test("documentActive carries the uri and the cursor as the server reads them", () => {
  assert.equal(DOCUMENT_ACTIVE_METHOD, "codellama/documentActive");
  assert.deepEqual(documentActiveParams("file:///w/a.py", 3, 7), {
    textDocument: { uri: "file:///w/a.py" },
    position: { line: 3, character: 7 },
  });
});

test("codellama/stats answers are checked before the tooltip uses them", () => {
  assert.ok(isTodayStats({ enabled: true, shown: 4, accepted: 1, rate: 0.25 }));
  assert.ok(isTodayStats({ enabled: false }));
  assert.ok(!isTodayStats({ enabled: true, shown: "4" }));
  assert.ok(!isTodayStats(null));
  assert.equal(todayLine({ enabled: true, shown: 4, accepted: 1 }), "Today: 1 of 4 accepted (25%)");
  assert.equal(todayLine({ enabled: false, shown: 0, accepted: 0 }), undefined);
});
