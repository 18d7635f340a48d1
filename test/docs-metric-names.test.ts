import * as fs from 'fs';
import * as path from 'path';
import { markdownFiles } from './support/markdown';
import { REPO } from './support/paths';
import { EPP_METRICS, GIE_V1_0_REQUEST_METRICS } from '@kvroute/epp/config';

/**
 * Every EPP metric a README names is one the EPP exports (`epp/src/config/metric-names.ts`): GIE v1.x renamed the
 * `inference_model_*` family and kvroute renamed a few of its own, and docs kept the old names for a session after.
 * A name ending in `_` or followed by `*` is a family prefix and must start some exported name; `_bucket`, `_sum` and
 * `_count` are a histogram's series. A line that says the name is an old one ("before", "renamed", "v0.5"), or follows one, is history.
 */
const ROOT = REPO;

const exported = [...Object.values(EPP_METRICS), ...GIE_V1_0_REQUEST_METRICS].map((m) => m.name as string);
const HISTORY = /\bbefore\b|renamed|\bv0\.5\b|\bold\b|\bwas\b/i;

function known(name: string, prefix: boolean): boolean {
  if (prefix) return exported.some((e) => e.startsWith(name));
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return exported.includes(name) || exported.includes(base);
}

describe('metric names in the Markdown docs', () => {
  it('are the names the EPP exports', () => {
    const unknown: string[] = [];
    for (const file of markdownFiles(ROOT)) {
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        // A sentence about an old name may break its line just before the name.
        if (HISTORY.test(line) || HISTORY.test(lines[i - 1] ?? '')) return;
        for (const m of line.matchAll(/\b((?:kvroute_epp|inference_(?:objective|model|pool|extension))_[a-z0-9_]*)(\*)?/g)) {
          const name = m[1]!;
          if (!known(name, name.endsWith('_') || m[2] === '*')) unknown.push(`${path.relative(ROOT, file)}:${i + 1} ${name}`);
        }
      });
    }
    expect(unknown).toEqual([]);
  });

  it("name every kvroute_epp_* family the EPP exports in epp/README.md's metrics section", () => {
    const readme = fs.readFileSync(path.join(ROOT, 'epp', 'README.md'), 'utf8');
    const start = readme.indexOf('\n## Metrics (`:9090/metrics`)');
    const end = readme.indexOf('\n## ', start + 1);
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, end);
    const missing = Object.values(EPP_METRICS)
      .map((m) => m.name as string)
      .filter((name) => name.startsWith('kvroute_epp_') && !new RegExp(`\\b${name}\\b`).test(section));
    expect(missing).toEqual([]);
  });
});
