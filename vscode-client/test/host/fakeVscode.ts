// A small stand-in for the `vscode` module: enough of the API for the bundled
// extension and vscode-languageclient to activate, sync documents, answer inline
// completions and run commands under plain node. Anything not modelled here is
// a do-nothing stub, so a new API use shows up as a failed expectation rather
// than a crash at load time.

import { fileURLToPath, pathToFileURL } from "node:url";

type Listener<T> = (value: T) => unknown;

export class Disposable {
  constructor(private readonly onDispose?: () => void) {}
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((i) => i.dispose()));
  }
  dispose(): void {
    this.onDispose?.();
  }
}

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  readonly event = (listener: Listener<T>): Disposable => {
    this.listeners.push(listener);
    return new Disposable(() => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    });
  };
  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      listener(value);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
    private readonly text: string,
  ) {}
  static parse(value: string): Uri {
    const scheme = value.slice(0, Math.max(0, value.indexOf(":")));
    return new Uri(scheme, scheme === "file" ? fileURLToPath(value) : value.slice(scheme.length + 1), value);
  }
  static file(path: string): Uri {
    return new Uri("file", path, pathToFileURL(path).toString());
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return this.text;
  }
  toJSON(): string {
    return this.text;
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    if (typeof a === "number" && typeof b === "number") {
      this.start = new Position(a, b);
      this.end = new Position(c ?? a, d ?? b);
    } else {
      this.start = a as Position;
      this.end = b as Position;
    }
  }
}

export class InlineCompletionItem {
  constructor(
    readonly insertText: string,
    readonly range?: Range,
    readonly command?: unknown,
  ) {}
}

export class InlineCompletionList {
  constructor(readonly items: InlineCompletionItem[]) {}
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class CancellationTokenSource {
  private cancelled = false;
  private readonly emitter = new EventEmitter<void>();
  readonly token = {
    isCancellationRequested: false,
    onCancellationRequested: this.emitter.event,
  };
  cancel(): void {
    if (!this.cancelled) {
      this.cancelled = true;
      this.token.isCancellationRequested = true;
      this.emitter.fire();
    }
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class CancellationError extends Error {}

export class TextDocument {
  isClosed = false;
  isDirty = false;
  isUntitled = false;
  readonly eol = 1;
  constructor(
    readonly uri: Uri,
    readonly languageId: string,
    public version: number,
    private text: string,
  ) {}
  get fileName(): string {
    return this.uri.fsPath;
  }
  get lineCount(): number {
    return this.text.split("\n").length;
  }
  getText(): string {
    return this.text;
  }
  setText(text: string): void {
    this.text = text;
    this.version++;
  }
}

interface Filter {
  readonly scheme?: string;
  readonly language?: string;
}

export interface Recorded {
  readonly commands: Map<string, (...args: unknown[]) => unknown>;
  readonly inlineProviders: { provideInlineCompletionItems(...args: unknown[]): Promise<unknown> }[];
  readonly shownMessages: string[];
  readonly openedDocuments: { content?: string; language?: string; uri?: string }[];
  readonly shownDocuments: unknown[];
  readonly log: string[];
  statusText: string;
  statusTooltip: string;
}

export function createFakeVscode(defaults: Record<string, unknown>, documents: TextDocument[], folder: string) {
  const values = new Map<string, unknown>(Object.entries(defaults));
  const configurationChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();
  const recorded: Recorded = {
    commands: new Map(),
    inlineProviders: [],
    shownMessages: [],
    openedDocuments: [],
    shownDocuments: [],
    log: [],
    statusText: "",
    statusTooltip: "",
  };

  /** The settings below `section` as VS Code nests them (`{model: {path}}`). */
  function nested(section: string): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    for (const [key, value] of values) {
      if (!key.startsWith(`${section}.`)) {
        continue;
      }
      const parts = key.slice(section.length + 1).split(".");
      let node = result;
      for (const part of parts.slice(0, -1)) {
        node = (node[part] ??= {}) as Record<string, unknown>;
      }
      node[parts[parts.length - 1]!] = value;
    }
    return result;
  }

  function getConfiguration(section?: string) {
    const prefix = section ? `${section}.` : "";
    const lookup = (key: string): unknown => {
      const full = prefix + key;
      if (values.has(full)) {
        return values.get(full);
      }
      const group = nested(full);
      return Object.keys(group).length > 0 ? group : undefined;
    };
    return {
      ...(section ? nested(section) : {}),
      get: <T>(key: string, fallback?: T): T | undefined => (lookup(key) as T | undefined) ?? fallback,
      has: (key: string) => lookup(key) !== undefined,
      inspect: (key: string) => ({ key: prefix + key, globalValue: lookup(key) }),
      update: async (key: string, value: unknown) => {
        values.set(prefix + key, value);
        const changed = prefix + key;
        configurationChanged.fire({
          affectsConfiguration: (s: string) => changed === s || changed.startsWith(`${s}.`),
        });
      },
    };
  }

  function match(selector: Filter[] | Filter, document: TextDocument): number {
    const filters = Array.isArray(selector) ? selector : [selector];
    return filters.some(
      (f) =>
        (f.scheme === undefined || f.scheme === document.uri.scheme) &&
        (f.language === undefined || f.language === document.languageId),
    )
      ? 10
      : 0;
  }

  const never = () => new Disposable();
  const logger = (level: string) => (message: unknown) => {
    recorded.log.push(`[${level}] ${String(message)}`);
  };
  const outputChannel = {
    name: "Code Llama",
    logLevel: 3,
    onDidChangeLogLevel: never,
    trace: logger("trace"),
    debug: logger("debug"),
    info: logger("info"),
    warn: logger("warn"),
    error: logger("error"),
    append: logger("append"),
    appendLine: logger("line"),
    replace: logger("replace"),
    clear: () => undefined,
    show: () => undefined,
    hide: () => undefined,
    dispose: () => undefined,
  };
  const showMessage = async (message: string) => {
    recorded.shownMessages.push(message);
    return undefined;
  };
  const didChangeTextDocument = new EventEmitter<unknown>();
  const contentProviders = new Map<string, { provideTextDocumentContent(uri: Uri): string }>();

  const api = {
    version: "1.91.0",
    env: { appName: "Visual Studio Code", language: "en", machineId: "test", openExternal: async () => true },
    Disposable,
    EventEmitter,
    Uri,
    Position,
    Range,
    InlineCompletionItem,
    InlineCompletionList,
    ThemeColor,
    CancellationTokenSource,
    CancellationError,
    StatusBarAlignment: { Left: 1, Right: 2 },
    ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
    InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    LogLevel: { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 },
    window: {
      createOutputChannel: () => outputChannel,
      createStatusBarItem: () => {
        const item = {
          name: "",
          command: undefined as unknown,
          backgroundColor: undefined as unknown,
          show: () => undefined,
          hide: () => undefined,
          dispose: () => undefined,
          set text(value: string) {
            recorded.statusText = value;
          },
          get text() {
            return recorded.statusText;
          },
          set tooltip(value: string) {
            recorded.statusTooltip = value;
          },
          get tooltip() {
            return recorded.statusTooltip;
          },
        };
        return item;
      },
      showErrorMessage: showMessage,
      showWarningMessage: showMessage,
      showInformationMessage: showMessage,
      showTextDocument: async (document: unknown) => {
        recorded.shownDocuments.push(document);
        return undefined;
      },
      withProgress: async (_options: unknown, task: (progress: unknown, token: unknown) => Promise<unknown>) =>
        task({ report: () => undefined }, new CancellationTokenSource().token),
      activeTextEditor: undefined,
      visibleTextEditors: [],
      tabGroups: { all: [], onDidChangeTabs: never, onDidChangeTabGroups: never },
      onDidChangeActiveTextEditor: never,
      onDidChangeTextEditorSelection: never,
      onDidChangeVisibleTextEditors: never,
    },
    workspace: {
      workspaceFolders: [{ uri: Uri.file(folder), name: "workspace", index: 0 }],
      textDocuments: documents,
      notebookDocuments: [],
      getConfiguration,
      onDidChangeConfiguration: configurationChanged.event,
      onDidOpenTextDocument: never,
      onDidCloseTextDocument: never,
      onDidChangeTextDocument: didChangeTextDocument.event,
      onDidSaveTextDocument: never,
      onWillSaveTextDocument: never,
      onDidChangeWorkspaceFolders: never,
      onDidOpenNotebookDocument: never,
      onDidChangeNotebookDocument: never,
      onDidSaveNotebookDocument: never,
      onDidCloseNotebookDocument: never,
      createFileSystemWatcher: () => ({
        onDidCreate: never,
        onDidChange: never,
        onDidDelete: never,
        dispose: () => undefined,
      }),
      openTextDocument: async (target: Uri | { content?: string; language?: string }) => {
        if (target instanceof Uri) {
          const provider = contentProviders.get(target.scheme);
          const opened = { uri: target.toString(), content: provider?.provideTextDocumentContent(target) };
          recorded.openedDocuments.push(opened);
          return opened;
        }
        recorded.openedDocuments.push(target);
        return target;
      },
      registerTextDocumentContentProvider: (
        scheme: string,
        provider: { provideTextDocumentContent(uri: Uri): string },
      ) => {
        contentProviders.set(scheme, provider);
        return new Disposable(() => contentProviders.delete(scheme));
      },
      applyEdit: async () => true,
    },
    languages: {
      match,
      registerInlineCompletionItemProvider: (_selector: unknown, provider: Recorded["inlineProviders"][number]) => {
        recorded.inlineProviders.push(provider);
        return new Disposable(() => {
          recorded.inlineProviders.splice(recorded.inlineProviders.indexOf(provider), 1);
        });
      },
      createDiagnosticCollection: () => ({ set: () => undefined, delete: () => undefined, clear: () => undefined, dispose: () => undefined }),
    },
    commands: {
      registerCommand: (name: string, handler: (...args: unknown[]) => unknown) => {
        recorded.commands.set(name, handler);
        return new Disposable(() => recorded.commands.delete(name));
      },
      executeCommand: async (name: string, ...args: unknown[]) => recorded.commands.get(name)?.(...args),
    },
  };

  /** Unmodelled names: a stub that can be called, constructed, extended and read. */
  function stub(name: string): unknown {
    const target = class {};
    return new Proxy(target, {
      get: (t, prop) => (prop in t ? (t as unknown as Record<PropertyKey, unknown>)[prop] : stub(`${name}.${String(prop)}`)),
      apply: () => new Disposable(),
    });
  }
  const proxied = (object: Record<string, unknown>, name: string): unknown =>
    new Proxy(object, {
      get: (t, prop) => {
        if (prop in t) {
          const value = t[prop as string];
          return typeof value === "object" && value !== null && !Array.isArray(value) && prop !== "env"
            ? proxied(value as Record<string, unknown>, `${name}.${String(prop)}`)
            : value;
        }
        // Not a thenable: `await` on a namespace must not call a stub.
        return typeof prop === "symbol" || prop === "then" ? undefined : stub(`${name}.${prop}`);
      },
    });

  return { api: proxied(api, "vscode"), recorded, values, didChangeTextDocument };
}
