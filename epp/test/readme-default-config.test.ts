import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultEndpointPickerConfig } from '../src/config';

/**
 * epp/README.md's "The default config" table is what operators read to learn what the cdk8s app deploys; it once
 * kept a plugin list a release behind `defaults.ts`. Every step of the default profile, in order, with its weight,
 * must be a row of the table, and the table must have no other rows.
 */
describe('epp/README.md "The default config" table matches defaultEndpointPickerConfig()', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  const start = readme.indexOf('### The default config');
  const section = readme.slice(start, readme.indexOf('\n## ', start));
  const rows = section
    .split('\n')
    .filter((l) => /^\| \d+ \|/.test(l))
    .map((l) => {
      const cells = l.split('|').map((c) => c.trim());
      const weight = /\*\*(\d+(?:\.\d+)?)\*\*/.exec(cells[3]);
      return { step: Number(cells[1]), plugin: cells[2].replace(/`/g, ''), weight: weight ? Number(weight[1]) : undefined };
    });

  it('lists the profile steps in order with their weights', () => {
    expect(start).toBeGreaterThan(0);
    const config = defaultEndpointPickerConfig();
    const byName = new Map(config.plugins.map((p) => [p.name ?? p.type, p.type]));
    const profile = config.schedulingProfiles[0];
    const steps = profile.plugins.map((ref, i) => {
      const type = byName.get(ref.pluginRef) ?? ref.pluginRef;
      // Filters and pickers carry no weight; the table marks scorers' weights in bold.
      return { step: i + 1, plugin: type, weight: type.endsWith('-scorer') ? (ref.weight ?? 1) : undefined };
    });
    expect(rows).toEqual(steps);
  });
});
