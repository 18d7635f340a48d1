import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KNOWN_PLUGIN_TYPES, type PluginType } from '../src/config/catalogue';
import { resolvePluginParameters } from '../src/config/parameters';

/**
 * epp/README.md's plugin table ("Scheduling": `| Type | Kind | Parameters (default) | What it does |`) is where an
 * operator looks up what a plugin takes. Since kvroute refuses a parameter it does not know (a deliberate difference
 * from upstream's plain json.Unmarshal), a parameter the loader takes but the table omits is one an operator cannot
 * learn of, and one the table names but the loader refuses fails their config. Each plugin's accepted parameters are
 * read from the loader itself: the list its unknown-field error gives (`FieldReader.finish`).
 */

/** The parameters a plugin requires before it reads the rest (so its unknown-field error lists them all). */
const REQUIRED: Partial<Record<PluginType, Record<string, unknown>>> = {
  'by-label': { label: 'role', validValues: ['decode'] },
  'header-label-affinity-scorer': { headerName: 'x-slice', labelKey: 'slice' },
  'lora-room-filter': { adapters: ['a'] },
  'priority-holdback-policy': { minCeiling: 0.5 },
  'session-id-producer': { headerName: 'x-session-id' },
  'utilization-filter': { conditions: [{ metric: 'waiting-queue', maxValue: 4 }] },
  'file-discovery': { path: '/endpoints.yaml' },
};

/** The parameters `type` accepts, by the loader's own unknown-field message; [] for a plugin that takes none. */
function acceptedParameters(type: PluginType): string[] {
  try {
    resolvePluginParameters(type, { ...REQUIRED[type], 'zz-not-a-parameter': 1 });
  } catch (e) {
    const message = (e as Error).message;
    if (message.includes('this plugin takes no parameters')) return [];
    const allowed = /unknown field; allowed: (.*)$/.exec(message);
    if (allowed) return allowed[1]!.split(', ');
    throw new Error(`${type}: ${message} (add its required parameters to REQUIRED)`);
  }
  // A plugin that ignores parameters it does not take (upstream's factories that take their decoder as `_`).
  return [];
}

describe('epp/README.md\'s plugin table names every parameter the loader accepts', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Scheduling');
  const section = readme.slice(start, readme.indexOf('\n### ', start));
  /**
   * Each table row's first-column types → the rest of its row (the plugin table's parameters cell onwards; the llm-d
   * field table's one cell, where `file-discovery` is described).
   */
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const [first, ...rest] = line.split(' | ');
    for (const m of first!.matchAll(/`([a-z0-9-]+)`/g)) rows.set(m[1]!, rest.join(' | '));
  }

  test('the table was found', () => {
    expect(start).toBeGreaterThan(0);
    expect(rows.size).toBeGreaterThan(40);
  });

  test.each(KNOWN_PLUGIN_TYPES.filter((type) => rows.has(type)))('%s', (type) => {
    const cell = rows.get(type)!;
    // Named as itself (`name`), by a field of it (`name.field`) or with a value (`name: true`).
    const missing = acceptedParameters(type).filter((name) => !new RegExp(`\`${name}[\`.:]`).test(cell));
    expect({ type, missing }).toEqual({ type, missing: [] });
  });
});
