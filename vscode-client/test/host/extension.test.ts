// The bundled extension (dist/extension.js) activated in a fake VS Code host
// against the real server: status bar, inline suggestions, commands, settings
// sync and restart, through the real vscode-languageclient code paths.
// Same environment variables as the wire test.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import Module from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";

import { readManifest, ROOT } from "../unit/manifest";
import { createFakeVscode, Position, TextDocument, Uri } from "./fakeVscode";

const MODEL = process.env.CODELLAMA_TEST_MODEL ?? "";
const SERVER = process.env.CODELLAMA_LSP_PATH ?? "";
const PYTHON = process.env.CODELLAMA_LSP_PYTHON ?? "";
const SKIP =
  !MODEL || !(SERVER || PYTHON)
    ? "set CODELLAMA_TEST_MODEL and CODELLAMA_LSP_PATH or CODELLAMA_LSP_PYTHON (tests/e2e/test_client_vscode.py does)"
    : false;

interface ExtensionModule {
  activate(context: unknown): Promise<void>;
  deactivate(): Promise<void>;
}

async function until(what: string, check: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("the bundled extension in a fake VS Code", { skip: SKIP, timeout: 120_000 }, async () => {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), "codellama-host-"));
  const file = path.join(workspace, "add.py");
  fs.writeFileSync(file, "def add(a, b):\n    ");
  const document = new TextDocument(Uri.file(file), "python", 1, "def add(a, b):\n    ");
  const other = new TextDocument(Uri.file(path.join(workspace, "notes.md")), "markdown", 1, "# notes\n");

  const manifest = readManifest();
  const defaults: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(manifest.contributes.configuration.properties)) {
    defaults[key] = prop.default;
  }
  Object.assign(defaults, {
    "codellama.model.path": MODEL,
    "codellama.model.nCtx": 4096,
    "codellama.server.path": SERVER,
    "codellama.server.pythonPath": PYTHON,
  });
  const fake = createFakeVscode(defaults, [document, other], workspace);

  // `require("vscode")` inside the bundle gets the fake.
  const loader = Module as unknown as { _load(request: string, ...rest: unknown[]): unknown };
  const load = loader._load;
  loader._load = function (request: string, ...rest: unknown[]) {
    return request === "vscode" ? fake.api : load.call(this, request, ...rest);
  };
  const extension = require(path.join(ROOT, "dist", "extension.js")) as ExtensionModule;
  loader._load = load;

  const context = { subscriptions: [] as { dispose(): unknown }[], extension: { packageJSON: manifest } };
  const { recorded } = fake;
  try {
    await extension.activate(context);
    for (const command of manifest.contributes.commands) {
      assert.ok(recorded.commands.has(command.command), command.command);
    }
    await until("the ready status", () => recorded.statusText === "$(sparkle) Code Llama · llama.cpp");
    assert.match(recorded.statusTooltip, new RegExp(`Backend: llama\\.cpp, in the server process \\(${path.basename(MODEL).replace(/\./g, "\\.")}\\)`));
    assert.equal(recorded.inlineProviders.length, 1, "one inline completion provider");

    const provider = () => recorded.inlineProviders[0]!;
    const suggest = async (): Promise<string[] | null> => {
      const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) };
      const result = (await provider().provideInlineCompletionItems(
        document,
        new Position(1, 4),
        { triggerKind: 1, selectedCompletionInfo: undefined },
        token,
      )) as { items: { insertText: string }[] } | null | undefined;
      return result ? result.items.map((i) => i.insertText) : null;
    };
    assert.deepEqual(await suggest(), [" pass"]);
    // The latency comes from codellama/lastPrompt shortly after a suggestion.
    await until("the latency in the status bar", () => / · \d+ ms$/.test(recorded.statusText), 10_000);
    assert.match(recorded.statusTooltip, /Last completion: \d+ ms \(first token \d+ ms\)/);

    // Accepting: VS Code runs the item's command after inserting it; the language client
    // registered it (the server's executeCommandProvider) and sends workspace/executeCommand.
    const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose() {} }) };
    const shownItems = (await provider().provideInlineCompletionItems(
      document,
      new Position(1, 4),
      { triggerKind: 1, selectedCompletionInfo: undefined },
      token,
    )) as { items: { command?: { command: string; arguments?: unknown[] } }[] };
    const accept = shownItems.items[0]?.command;
    assert.equal(accept?.command, "codellama.suggestionAccepted");
    assert.ok(recorded.commands.has(accept.command), "the client registered the server's command");
    await recorded.commands.get(accept.command)!(...(accept.arguments ?? []));
    // The tooltip asks codellama/stats after the accept.
    await until("today's rate in the tooltip", () => /^Today: 1 of \d+ accepted \(\d+%\)$/m.test(recorded.statusTooltip), 10_000);

    await recorded.commands.get("codellama.showLastPrompt")!();
    const shown = recorded.openedDocuments.at(-1);
    // A read-only virtual document, plain text by its name.
    assert.match(shown?.uri ?? "", /^codellama-prompt:.*\.txt$/);
    assert.match(shown?.content ?? "", /completion: " pass"/);
    assert.match(shown?.content ?? "", /def add\(a, b\):/);
    assert.equal(recorded.shownDocuments.length, 1);

    // Toggle off: the status shows it and no request reaches the server.
    await recorded.commands.get("codellama.toggle")!();
    assert.equal(fake.values.get("codellama.enable"), false);
    assert.equal(recorded.statusText, "$(circle-slash) Code Llama · llama.cpp");
    assert.equal(await suggest(), null);
    await recorded.commands.get("codellama.enable")!();
    assert.match(recorded.statusText, /sparkle/);

    // A server setting: pushed with workspace/didChangeConfiguration, no restart.
    const api = fake.api as { workspace: { getConfiguration(s: string): { update(k: string, v: unknown): Promise<void> } } };
    await api.workspace.getConfiguration("codellama").update("completion.fimOrder", "psm");
    let answer = await suggest();
    for (let tries = 0; answer?.[0] !== " return a + b" && tries < 50; tries++) {
      await new Promise((r) => setTimeout(r, 100));
      answer = await suggest();
    }
    assert.deepEqual(answer, [" return a + b"]);

    // Restart: a new server, a new provider, ready again.
    await recorded.commands.get("codellama.restartServer")!();
    await until("ready after restart", () => recorded.statusText === "$(sparkle) Code Llama · llama.cpp");
    assert.equal(recorded.inlineProviders.length, 1);
    assert.deepEqual(await suggest(), [" return a + b"]);

    // Neither the settings sent at start nor the pushed ones drew a warning.
    const complaints = [...recorded.shownMessages, ...recorded.log].filter((m) => /unknown setting|setting codellama\./.test(m));
    assert.deepEqual(complaints, []);
  } finally {
    await extension.deactivate();
    for (const disposable of context.subscriptions) {
      disposable.dispose();
    }
    fs.rmSync(workspace, { recursive: true, force: true });
  }
  // deactivate() shuts the server down cleanly (shutdown, exit) and says so.
  await until("the server to exit", () => recorded.log.filter((l) => l.includes("exited successfully")).length === 2, 10_000);
});
