// The browser side of Wattbench's panels. The page's body says which view it is (data-view="live" or
// "result"; Compare Runs is the result view with several runs); this entry makes that view, hands it
// the host's messages, and says `ready` so that the host sends its first snapshot.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-badge/index.js';
import type { HostToLive, HostToResult } from '../src/core/protocol/webview';
import { vscode } from './dom';
import { LiveView } from './live';
import { ResultView } from './result';
import { addStyle } from './style';

addStyle();

const view = document.body.dataset.view;
const live = view === 'live' ? new LiveView() : undefined;
const result = view === 'result' ? new ResultView() : undefined;
window.addEventListener('message', (event: MessageEvent<HostToLive | HostToResult>) => {
  const message = event.data;
  if (message.type === 'snapshot') live?.snapshot(message.state);
  else if (message.type === 'append') live?.append(message);
  else if (message.type === 'result') result?.render(message);
});
vscode.postMessage({ type: 'ready' });
