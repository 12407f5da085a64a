/** Small numerical tools for the fits: Nelder–Mead minimisation and linear least squares. */

export interface MinimizeResult {
  x: number[];
  value: number;
  iterations: number;
}

export interface NelderMeadOptions {
  /** Initial simplex edge per coordinate. */
  step?: number;
  maxIterations?: number;
  /** Stop when the simplex's values differ by less than this. */
  tolerance?: number;
}

/** Nelder–Mead with the standard coefficients (reflect 1, expand 2, contract ½, shrink ½). */
export function nelderMead(f: (x: number[]) => number, start: number[], opts: NelderMeadOptions = {}): MinimizeResult {
  const dim = start.length;
  const step = opts.step ?? 0.1;
  const maxIterations = opts.maxIterations ?? 400 * Math.max(dim, 1);
  const tolerance = opts.tolerance ?? 1e-10;
  const simplex: { x: number[]; v: number }[] = [{ x: [...start], v: f(start) }];
  for (let i = 0; i < dim; i++) {
    const x = [...start];
    x[i]! += step;
    simplex.push({ x, v: f(x) });
  }
  let iterations = 0;
  for (; iterations < maxIterations; iterations++) {
    simplex.sort((a, b) => a.v - b.v);
    const best = simplex[0]!;
    const worst = simplex[dim]!;
    if (Math.abs(worst.v - best.v) <= tolerance * (Math.abs(best.v) + tolerance)) break;
    const centroid = new Array<number>(dim).fill(0);
    for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) centroid[j]! += simplex[i]!.x[j]! / dim;
    const along = (t: number) => centroid.map((c, j) => c + t * (worst.x[j]! - c));
    const reflected = along(-1);
    const vr = f(reflected);
    if (vr < best.v) {
      const expanded = along(-2);
      const ve = f(expanded);
      simplex[dim] = ve < vr ? { x: expanded, v: ve } : { x: reflected, v: vr };
      continue;
    }
    if (vr < simplex[dim - 1]!.v) {
      simplex[dim] = { x: reflected, v: vr };
      continue;
    }
    const contracted = vr < worst.v ? along(-0.5) : along(0.5);
    const vc = f(contracted);
    if (vc < Math.min(vr, worst.v)) {
      simplex[dim] = { x: contracted, v: vc };
      continue;
    }
    for (let i = 1; i <= dim; i++) {
      const x = simplex[i]!.x.map((xi, j) => best.x[j]! + 0.5 * (xi - best.x[j]!));
      simplex[i] = { x, v: f(x) };
    }
  }
  simplex.sort((a, b) => a.v - b.v);
  return { x: simplex[0]!.x, value: simplex[0]!.v, iterations };
}

/**
 * Least-squares solution of A·x ≈ b through the normal equations (AᵀA)x = Aᵀb, solved by Gaussian
 * elimination with partial pivoting. Fine for the few, well-scaled unknowns of the runtime fits.
 */
export function leastSquares(a: number[][], b: number[]): number[] {
  const cols = a[0]?.length ?? 0;
  const ata = Array.from({ length: cols }, () => new Array<number>(cols).fill(0));
  const atb = new Array<number>(cols).fill(0);
  a.forEach((row, r) => {
    for (let i = 0; i < cols; i++) {
      atb[i]! += row[i]! * b[r]!;
      for (let j = 0; j < cols; j++) ata[i]![j]! += row[i]! * row[j]!;
    }
  });
  return solve(ata, atb);
}

function solve(m: number[][], v: number[]): number[] {
  const n = v.length;
  const a = m.map((row, i) => [...row, v[i]!]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r]![col]!) > Math.abs(a[pivot]![col]!)) pivot = r;
    if (Math.abs(a[pivot]![col]!) < 1e-300) throw new Error('least squares: the unknowns are not determined by the data');
    [a[col], a[pivot]] = [a[pivot]!, a[col]!];
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const factor = a[r]![col]! / a[col]![col]!;
      for (let c = col; c <= n; c++) a[r]![c]! -= factor * a[col]![c]!;
    }
  }
  return a.map((row, i) => row[n]! / row[i]!);
}
