/**
 * A real VS Code (code-server from npm) with the packaged extension installed, driven in Debian's
 * Chromium by playwright-core. See ../../../shared/TESTING.md for why these parts and flags.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../../scripts/chromium';

export const ROOT = join(__dirname, '..', '..');
export const CODE_SERVER_VERSION = '4.100.3';
export const CODE_SERVER_ENTRY =
  process.env.WATTBENCH_CODE_SERVER ??
  join(process.env.WATTBENCH_TOOLS ?? join(homedir(), '.cache', 'wattbench-dev'), `code-server-${CODE_SERVER_VERSION}`, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
export const VSIX = join(ROOT, 'dist', 'wattbench.vsix');
export const ARTIFACTS = join(ROOT, 'test-results', 'e2e');


export interface VSCodeOptions {
  /** Files to put in the workspace: relative path → content, or copied from the repo with `copy:`. */
  files: Record<string, string>;
  trustEnabled?: boolean;
  settings?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Writes files into the private HOME before VS Code starts (e.g. ~/.ssh/config). */
  prepareHome?: (home: string) => void;
}

export class VSCodeSession {
  page!: Page;
  workspace!: string;
  private context?: BrowserContext;
  private server?: ChildProcess;
  private dir!: string;
  private output = '';

  static async start(options: VSCodeOptions): Promise<VSCodeSession> {
    const session = new VSCodeSession();
    await session.boot(options);
    return session;
  }

  private async boot(options: VSCodeOptions): Promise<void> {
    if (!existsSync(CODE_SERVER_ENTRY)) throw new Error(`code-server not installed at ${CODE_SERVER_ENTRY}: run scripts/setup.sh e2e`);
    if (!existsSync(VSIX)) throw new Error(`${VSIX} missing: run npm run package`);
    this.dir = mkdtempSync(join(tmpdir(), 'wb-e2e-'));
    const home = join(this.dir, 'home');
    const userData = join(this.dir, 'user-data');
    const extensions = join(this.dir, 'extensions');
    this.workspace = join(this.dir, 'workspace');
    for (const d of [home, join(userData, 'User'), extensions, this.workspace, join(this.dir, 'tmp')]) mkdirSync(d, { recursive: true });
    options.prepareHome?.(home);
    for (const [path, content] of Object.entries(options.files)) {
      const target = join(this.workspace, path);
      mkdirSync(join(target, '..'), { recursive: true });
      if (content.startsWith('copy:')) cpSync(join(ROOT, content.slice(5)), target, { recursive: true });
      else writeFileSync(target, content);
    }
    writeFileSync(
      join(userData, 'User', 'settings.json'),
      JSON.stringify({
        'workbench.startupEditor': 'none',
        'security.workspace.trust.enabled': options.trustEnabled ?? false,
        'workbench.tips.enabled': false,
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'telemetry.telemetryLevel': 'off',
        'editor.codeLens': true,
        'git.openRepositoryInParentFolders': 'never',
        ...options.settings,
      }),
    );
    const env = { ...process.env, HOME: home, TMPDIR: join(this.dir, 'tmp'), XDG_CONFIG_HOME: join(home, '.config'), XDG_DATA_HOME: join(home, '.local/share'), XDG_CACHE_HOME: join(home, '.cache'), ...options.env };
    const install = spawnSync(process.execPath, [CODE_SERVER_ENTRY, '--extensions-dir', extensions, '--user-data-dir', userData, '--install-extension', VSIX], { env, encoding: 'utf8' });
    if (install.status !== 0) throw new Error(`installing the vsix failed: ${install.stdout}${install.stderr}`);

    const args = [CODE_SERVER_ENTRY, '--auth', 'none', '--bind-addr', '127.0.0.1:0', '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--user-data-dir', userData, '--extensions-dir', extensions, this.workspace];
    if (options.trustEnabled) args.splice(args.indexOf('--disable-workspace-trust'), 1);
    this.server = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`code-server did not start:\n${this.output}`)), 30_000);
      const onData = (chunk: Buffer) => {
        this.output += chunk.toString();
        const match = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(this.output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      };
      this.server!.stdout!.on('data', onData);
      this.server!.stderr!.on('data', onData);
      this.server!.on('exit', (code) => reject(new Error(`code-server exited with ${code}:\n${this.output}`)));
    });
    this.context = await chromium.launchPersistentContext(join(this.dir, 'chromium'), {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 900 },
    });
    this.page = this.context.pages()[0] ?? (await this.context.newPage());
    await this.page.goto(`${url}/?folder=${encodeURIComponent(this.workspace)}`);
    await this.page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
    await this.page.waitForTimeout(1500);
  }

  async openFile(name: string): Promise<void> {
    const page = this.page;
    await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } }).catch(() => undefined);
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget input').fill(name);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: name.split('/').pop()! }).first().waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
    await page.locator('.tabs-container .tab', { hasText: name.split('/').pop()! }).first().waitFor({ timeout: 15_000 });
    await page.locator('.monaco-editor .view-lines').first().waitFor();
  }

  /** Moves the cursor with Go to Line (1-based line and column). */
  async goTo(line: number, col: number): Promise<void> {
    await this.page.keyboard.press('Control+G');
    await this.page.locator('.quick-input-widget input').fill(`:${line}:${col}`);
    await this.page.keyboard.press('Enter');
  }

  async runCommand(title: string): Promise<void> {
    const page = this.page;
    await page.keyboard.press('F1');
    await page.locator('.quick-input-widget input').fill(`>${title}`);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title.split(': ').pop()! }).first().waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
  }

  async editorText(): Promise<string> {
    return (await this.page.locator('.monaco-editor .view-lines').first().innerText()).replace(/\u00a0/g, ' ');
  }

  async screenshot(name: string): Promise<void> {
    mkdirSync(ARTIFACTS, { recursive: true });
    await this.page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
  }

  async stop(): Promise<void> {
    await this.context?.close().catch(() => undefined);
    if (this.server && this.server.exitCode === null) {
      this.server.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      if (this.server.exitCode === null) this.server.kill('SIGKILL');
    }
    // code-server's last writes into workspaceStorage can land while the tree is removed.
    rmSync(this.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}

/** The webview frame (of any panel) that shows `selector`, polled until it appears. */
export async function webviewFrame(page: Page, selector: string, timeoutMs = 60_000, text?: string): Promise<import('playwright-core').Frame> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        const found = await frame.$(selector);
        if (found && (!text || (await found.innerText()).includes(text))) return frame;
      } catch {
        // A frame navigating away: try the next one.
      }
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no webview shows ${selector}`);
}

/** A small simulated config: two short points, a one-second idle baseline. */
export const SMALL_SIM_CONFIG = `name: e2e-sim
target: local
server:
  sim: true
model:
  id: meta-llama/Llama-3.1-8B-Instruct
gpus:
  type: H100-SXM-80GB
  count: 1
workload:
  input_tokens: 64
  output_tokens: 64
  num_prompts: 8
  warmup: 1
sweep:
  concurrency: [1, 4]
telemetry:
  source: sim
  interval: 100ms
  idle_baseline: 1s
`;
