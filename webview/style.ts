// The panels' stylesheet: VS Code's theme variables, so the views follow the theme.
const CSS = `
  body {
    color: var(--vscode-editor-foreground); background: var(--vscode-editor-background);
    font-family: var(--vscode-font-family); padding: 0 16px 24px;
  }
  h1 { font-size: 1.2em; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
  .card {
    border: 1px solid var(--vscode-editorWidget-border, #444); border-radius: 4px; padding: 8px; position: relative;
  }
  .card h2 { font-size: 1em; margin: 0 0 6px; display: flex; justify-content: space-between; }
  .chart { height: 240px; }
  table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
  th, td {
    border-bottom: 1px solid var(--vscode-editorWidget-border, #444);
    padding: 3px 6px; text-align: right; white-space: nowrap;
  }
  th:first-child, td:first-child { text-align: left; }
  .sim { color: var(--vscode-editorWarning-foreground); font-weight: bold; }
  .muted { opacity: 0.75; }
  .error { color: var(--vscode-errorForeground); }
  .scroll { overflow-x: auto; }
  button.link {
    background: none; border: none; color: var(--vscode-textLink-foreground);
    cursor: pointer; padding: 0; font-size: 0.85em;
  }
`;

export function addStyle(): void {
  const style = document.createElement('style');
  style.textContent = CSS;
  document.head.appendChild(style);
}
