import assert from "node:assert/strict";
import { test } from "node:test";

import { lastErrorOf, ServerLogParser } from "../../src/serverLog";

test("a log record keeps its level and loses the server's timestamp", () => {
  const parser = new ServerLogParser();
  assert.deepEqual(parser.line("2026-12-01 21:42:50,244 INFO codellama_lsp.server.model: model ready 🦙"), {
    level: "info",
    message: "codellama_lsp.server.model: model ready 🦙",
  });
  assert.equal(parser.line("2026-12-01 21:42:50,245 DEBUG x: y").level, "debug");
  assert.equal(parser.line("2026-12-01 21:42:50,246 WARNING x: slow").level, "warn");
  assert.equal(parser.line("2026-12-01 21:42:50,247 CRITICAL x: gone").level, "error");
});

test("continuation lines keep their record's level; stray tracebacks are errors", () => {
  const parser = new ServerLogParser();
  assert.equal(parser.line("llama_model_loader: loaded meta data").level, "info");
  assert.equal(parser.line("2026-12-01 21:42:50,244 ERROR codellama_lsp.server.app: request failed").level, "error");
  assert.equal(parser.line("  File \"x.py\", line 3, in f").level, "error");
  assert.equal(parser.line("2026-12-01 21:42:51,000 INFO codellama_lsp.server.app: ok").level, "info");
  assert.equal(parser.line("    next line of a long message").level, "info");
  assert.equal(parser.line("Traceback (most recent call last):").level, "error");
  assert.equal(parser.line("ModuleNotFoundError: No module named 'codellama_lsp'").level, "error");
  // An unknown word where the level goes is not a level.
  assert.equal(parser.line("2026-12-01 21:42:52,000 NOTE something").level, "error");
});

test("the reason quoted for a stop is the last error's first line", () => {
  const parser = new ServerLogParser();
  const lines = [
    "2026-12-01 21:42:50,244 INFO a: starting",
    "Traceback (most recent call last):",
    "  File \"/x/cli.py\", line 3, in <module>",
    "ModuleNotFoundError: No module named 'codellama_lsp'",
  ].map((l) => parser.line(l));
  assert.equal(lastErrorOf(lines), "ModuleNotFoundError: No module named 'codellama_lsp'");
  assert.equal(lastErrorOf([new ServerLogParser().line("2026-12-01 21:42:50,244 INFO a: fine")]), undefined);
});
