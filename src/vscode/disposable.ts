import * as vscode from 'vscode';

/**
 * A bag of disposables with one lifetime (the extension's, or one run's). Registering into a bag that
 * is already disposed disposes the item at once, so late registrations cannot leak.
 */
export class DisposableBag implements vscode.Disposable {
  private items: vscode.Disposable[] = [];
  private disposed = false;

  add<T extends vscode.Disposable>(item: T): T {
    if (this.disposed) item.dispose();
    else this.items.push(item);
    return item;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const item of this.items.splice(0).reverse()) {
      try {
        item.dispose();
      } catch {
        // One failing dispose must not keep the rest alive.
      }
    }
  }
}
