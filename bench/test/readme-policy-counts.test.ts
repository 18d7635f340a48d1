/**
 * The policy counts the root README states for each benchmark's default run ("The whole request path on one machine":
 * `npm run bench:lora … through five policies`, `bench:hetero`, `bench:burst`, and `bench:routing` "through eight
 * policies in one run"), against the defaults the commands parse.
 */
import * as fs from 'fs';
import * as path from 'path';
import { parseBurstArgs } from '../src/burst-bench';
import { parseHeteroArgs } from '../src/hetero-bench';
import { parseLoraArgs } from '../src/lora-bench';
import { parseRoutingArgs } from '../src/routing-bench';

const README = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
const WORDS: Readonly<Record<string, number>> = {
  five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15,
  sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19, twenty: 20,
};

/** The count in "through <count> policies" on the README's line for `npm run <script>`. */
function stated(script: string): number | undefined {
  const line = README.split('\n').find((l) => l.startsWith(`npm run ${script} `));
  const word = line === undefined ? undefined : /through (\w+) policies/.exec(line)?.[1];
  return word === undefined ? undefined : WORDS[word] ?? Number(word);
}

describe('the README\'s policy counts against the commands\' defaults', () => {
  test.each([
    ['bench:lora', () => parseLoraArgs([])!.policies.length],
    ['bench:hetero', () => parseHeteroArgs([])!.policies.length],
    ['bench:burst', () => parseBurstArgs([])!.policies.length],
  ])('%s', (script, count) => {
    expect(stated(script)).toBe(count());
  });

  test('bench:routing', () => {
    const word = /through (\w+) policies in one run/.exec(README)?.[1];
    expect(word === undefined ? undefined : WORDS[word]).toBe(parseRoutingArgs([])!.policies.length);
  });
});
