import * as vscode from 'vscode';
import type { CostSettings } from '../core/config';

export const SECTION = 'wattbench';

export function costDefaultsFromSettings(): Partial<CostSettings> {
  const c = vscode.workspace.getConfiguration(SECTION);
  return {
    usdPerKwh: c.get<number>('cost.usdPerKwh'),
    gco2PerKwh: c.get<number>('cost.gco2PerKwh'),
    pue: c.get<number>('cost.pue'),
    usdPerGpuHour: c.get<number>('cost.usdPerGpuHour'),
  };
}
