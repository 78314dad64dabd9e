// Drives the real codellama-lsp over stdio with the messages the extension's
// vscode-languageclient 11 sends, using the same JSON-RPC library it uses.
//
// Environment (set by tests/e2e/test_client_vscode.py):
//   CODELLAMA_LSP_PATH    the console script (codellama.server.path), or
//   CODELLAMA_LSP_PYTHON  an interpreter with the package (codellama.server.pythonPath)
//   CODELLAMA_TEST_MODEL  the generated tiny test model (tests/support/synthetic.py)

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import {
  type ClientCapabilities,
  ConfigurationRequest,
  createProtocolConnection,
  DidChangeConfigurationNotification,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExitNotification,
  InitializedNotification,
  type InitializeParams,
  InitializeRequest,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  LogMessageNotification,
  type ProtocolConnection,
  RegistrationRequest,
  ShowMessageNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgressCreateRequest,
} from "vscode-languageserver-protocol/node";

import { documentSelector } from "../../src/languages";
import { isStatusParams, LAST_PROMPT_METHOD, type LastPromptResult, hasPrompt, STATUS_METHOD } from "../../src/protocol";
import {
  declaredKeys,
  type JsonObject,
  type JsonValue,
  serverCommand,
  serverSettings,
  withoutExtensionKeys,
} from "../../src/settings";
import { initialStatus, reduce, render, type StatusState } from "../../src/status";
import { readManifest } from "../unit/manifest";

const MODEL = process.env.CODELLAMA_TEST_MODEL ?? "";
const LAUNCH = { path: process.env.CODELLAMA_LSP_PATH, pythonPath: process.env.CODELLAMA_LSP_PYTHON };
const SKIP =
  !MODEL || !(LAUNCH.path || LAUNCH.pythonPath)
    ? "set CODELLAMA_TEST_MODEL and CODELLAMA_LSP_PATH or CODELLAMA_LSP_PYTHON (tests/e2e/test_client_vscode.py does)"
    : false;

/**
 * The capabilities vscode-languageclient 11 fills in (client.js computeClientCapabilities
 * and each feature's fillClientCapabilities) that this server looks at or answers to.
 */
function clientCapabilities(): ClientCapabilities {
  return {
    general: {
      positionEncodings: ["utf-16"],
      regularExpressions: { engine: "ECMAScript", version: "ES2020" },
      markdown: { parser: "marked", version: "1.1.0" },
      staleRequestSupport: {
        cancel: true,
        retryOnContentModified: [
          "textDocument/semanticTokens/full",
          "textDocument/semanticTokens/range",
          "textDocument/semanticTokens/full/delta",
        ],
      },
    },
    workspace: {
      applyEdit: true,
      configuration: true,
      didChangeConfiguration: { dynamicRegistration: true },
      didChangeWatchedFiles: { dynamicRegistration: true, relativePatternSupport: true },
      workspaceFolders: true,
      workDoneProgress: undefined,
    } as ClientCapabilities["workspace"],
    textDocument: {
      synchronization: { dynamicRegistration: true, willSave: true, willSaveWaitUntil: true, didSave: true },
      completion: {
        dynamicRegistration: true,
        contextSupport: true,
        completionItem: { snippetSupport: true, insertReplaceSupport: true },
      },
      inlineCompletion: { dynamicRegistration: true },
    },
    window: {
      workDoneProgress: true,
      showMessage: { messageActionItem: { additionalPropertiesSupport: true } },
      showDocument: { support: true },
    },
  };
}

/** What VS Code's getConfiguration("codellama") yields with only these user values set. */
function settingsWith(overrides: Record<string, JsonValue>): JsonObject {
  const manifest = readManifest();
  const props = manifest.contributes.configuration.properties;
  return serverSettings(declaredKeys(manifest), (key) =>
    key in overrides ? overrides[key] : (props[`codellama.${key}`]?.default as JsonValue | undefined),
  );
}

interface Session {
  readonly connection: ProtocolConnection;
  readonly proc: ChildProcess;
  readonly messages: string[];
  status: StatusState;
  readonly stderr: string[];
  waitFor(predicate: (s: StatusState) => boolean, what: string, ms?: number): Promise<void>;
}

let pulls = 0;

function startServer(workspace: string, settings: () => JsonObject): Session {
  const { command, args } = serverCommand(LAUNCH, os.homedir());
  const proc = spawn(command, args, { cwd: workspace, stdio: ["pipe", "pipe", "pipe"] });
  const stderr: string[] = [];
  proc.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk.toString()));
  const connection = createProtocolConnection(
    new StreamMessageReader(proc.stdout!),
    new StreamMessageWriter(proc.stdin!),
  );
  const listeners: (() => void)[] = [];
  const session: Session = {
    connection,
    proc,
    messages: [],
    stderr,
    status: initialStatus(true),
    waitFor(predicate, what, ms = 60_000) {
      if (predicate(session.status)) {
        return Promise.resolve();
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${what}; status ${JSON.stringify(session.status)}\n${stderr.join("")}`)),
          ms,
        );
        listeners.push(() => {
          if (predicate(session.status)) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    },
  };
  // Server → client traffic, answered the way vscode-languageclient answers it.
  connection.onNotification(STATUS_METHOD, (params: unknown) => {
    assert.ok(isStatusParams(params), JSON.stringify(params));
    session.status = reduce(session.status, { kind: "server", params });
    for (const listener of listeners) {
      listener();
    }
  });
  connection.onNotification(ShowMessageNotification.type, (p) => {
    session.messages.push(p.message);
  });
  connection.onNotification(LogMessageNotification.type, (p) => {
    session.messages.push(p.message);
  });
  connection.onRequest(WorkDoneProgressCreateRequest.type, () => undefined);
  connection.onRequest(RegistrationRequest.type, () => undefined);
  // VS Code hands out the whole section, the extension's own keys included; the
  // extension's configuration middleware strips those (withoutExtensionKeys).
  connection.onRequest(ConfigurationRequest.type, (params) => {
    pulls++;
    return params.items.map((item) =>
      item.section === "codellama"
        ? (withoutExtensionKeys({ ...settings(), server: { path: "codellama-lsp", pythonPath: "" }, trace: { server: "off" } }) ?? null)
        : null,
    );
  });
  connection.onNotification("$/progress", () => undefined);
  connection.listen();
  session.status = reduce(session.status, { kind: "running" });
  return session;
}

test("the extension's messages against the real server", { skip: SKIP, timeout: 120_000 }, async () => {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), "codellama-wire-"));
  const file = path.join(workspace, "add.py");
  fs.writeFileSync(file, "def add(a, b):\n");
  const uri = pathToFileURL(file).toString();
  let settings = settingsWith({ "model.path": MODEL, "model.nCtx": 4096 });
  const s = startServer(workspace, () => settings);
  const exited = new Promise<number | null>((resolve) => s.proc.on("exit", (code) => resolve(code)));
  try {
    const params: InitializeParams = {
      processId: process.pid,
      clientInfo: { name: "Visual Studio Code", version: "1.91.0" },
      locale: "en",
      rootPath: workspace,
      rootUri: pathToFileURL(workspace).toString(),
      capabilities: clientCapabilities(),
      initializationOptions: settings,
      trace: "off",
      workspaceFolders: [{ uri: pathToFileURL(workspace).toString(), name: path.basename(workspace) }],
    };
    const init = await s.connection.sendRequest(InitializeRequest.type, params);
    assert.ok(init.capabilities.inlineCompletionProvider, "inlineCompletionProvider advertised");
    assert.equal(init.serverInfo?.name, "codellama-lsp");
    const sync = init.capabilities.textDocumentSync;
    assert.ok(typeof sync === "object" && sync.openClose, "openClose sync");
    assert.equal(sync.change, 2, "incremental sync");
    // VS Code negotiates nothing but UTF-16.
    assert.ok(init.capabilities.positionEncoding === undefined || init.capabilities.positionEncoding === "utf-16");
    await s.connection.sendNotification(InitializedNotification.type, {});

    await s.waitFor((st) => st.model === "ready", "the model to be ready");
    assert.equal(s.status.modelName, path.basename(MODEL));
    await s.waitFor((st) => st.index === "indexed", "the workspace index");

    assert.ok(documentSelector().some((f) => f.language === "python" && f.scheme === "file"));
    await s.connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri, languageId: "python", version: 1, text: "def add(a, b):\n" },
    });
    // Typing the indentation: VS Code sends incremental changes to an incremental server.
    await s.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: 2 },
      contentChanges: [{ range: { start: { line: 1, character: 0 }, end: { line: 1, character: 0 } }, rangeLength: 0, text: "    " }],
    });

    const inline = async () => {
      const result = await s.connection.sendRequest(InlineCompletionRequest.type, {
        textDocument: { uri },
        position: { line: 1, character: 4 },
        context: { triggerKind: InlineCompletionTriggerKind.Automatic },
      });
      // The server answers a list (not a bare array), like server/inline_completion.py builds it.
      assert.ok(result !== null && !Array.isArray(result), JSON.stringify(result));
      assert.equal(result.items.length, 1, JSON.stringify(result));
      const item = result.items[0]!;
      assert.deepEqual(item.range, { start: { line: 1, character: 4 }, end: { line: 1, character: 4 } });
      return item.insertText;
    };

    // SPM (the default) ends the prompt with the prefix; the test model answers
    // " pass" after the indentation token (tests/support/synthetic.py).
    assert.equal(await inline(), " pass");

    const last = await s.connection.sendRequest<LastPromptResult>(LAST_PROMPT_METHOD, {});
    assert.ok(hasPrompt(last), JSON.stringify(last));
    assert.equal(last.uri, uri);
    assert.deepEqual(last.position, { line: 1, character: 4 });
    assert.equal(last.fimOrder, "spm");
    assert.equal(last.completion, " pass");
    assert.ok(last.prompt.includes("def add(a, b):"), last.prompt);
    assert.ok(last.totalMs >= last.ttftMs && last.ttftMs >= 0, `${last.ttftMs} ${last.totalMs}`);
    s.status = reduce(s.status, { kind: "latency", latency: { ttftMs: last.ttftMs, totalMs: last.totalMs } });
    assert.match(render(s.status).text, /^\$\(sparkle\) Code Llama · llama\.cpp · \d+ ms$/);

    // A settings change as the extension pushes it; PSM ends the prompt with <MID>,
    // after which the test model writes its scripted body.
    settings = settingsWith({ "model.path": MODEL, "model.nCtx": 4096, "completion.fimOrder": "psm" });
    await s.connection.sendNotification(DidChangeConfigurationNotification.type, { settings: { codellama: settings } });
    assert.equal(await inline(), " return a + b");
    const psm = await s.connection.sendRequest<LastPromptResult>(LAST_PROMPT_METHOD, {});
    assert.ok(hasPrompt(psm) && psm.fimOrder === "psm");

    // The pull model: vscode-languageclient sends no settings and the server asks for them.
    settings = settingsWith({ "model.path": MODEL, "model.nCtx": 4096 });
    await s.connection.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
    // The server applies them once our answer arrives, after requests already queued.
    let answer = await inline();
    for (let tries = 0; answer !== " pass" && tries < 50; tries++) {
      await new Promise((r) => setTimeout(r, 100));
      answer = await inline();
    }
    assert.equal(answer, " pass");
    assert.ok(pulls > 0, "the server pulled workspace/configuration");

    // Disabled: the server answers, with nothing.
    settings = settingsWith({ "model.path": MODEL, "model.nCtx": 4096, enable: false });
    await s.connection.sendNotification(DidChangeConfigurationNotification.type, { settings: { codellama: settings } });
    const disabled = await s.connection.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position: { line: 1, character: 4 },
      context: { triggerKind: InlineCompletionTriggerKind.Invoked },
    });
    assert.ok(disabled !== null && !Array.isArray(disabled), JSON.stringify(disabled));
    assert.deepEqual(disabled.items, []);

    // Every key the extension sends is one the server knows.
    const complaints = s.messages.filter((m) => /unknown setting|setting codellama\./.test(m));
    assert.deepEqual(complaints, []);

    await s.connection.sendRequest(ShutdownRequest.type);
    await s.connection.sendNotification(ExitNotification.type);
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exited, new Promise((r) => (timer = setTimeout(() => r("timeout"), 20_000)))]);
    clearTimeout(timer);
    assert.equal(code, 0, `exit status; stderr:\n${s.stderr.join("")}`);
  } finally {
    s.connection.dispose();
    if (s.proc.exitCode === null) {
      s.proc.kill();
    }
    fs.rmSync(workspace, { recursive: true, force: true });
  }
});
