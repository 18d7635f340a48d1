import { readFileSync, readdirSync } from 'fs';
import { parseEndpointPickerConfig } from './src/config';
import { buildScheduler } from './src/scheduling/scheduler';
for (const f of readdirSync('/tmp/llmdcfg').filter((f) => f.endsWith('.yaml'))) {
  try { buildScheduler(parseEndpointPickerConfig(readFileSync('/tmp/llmdcfg/' + f, 'utf8'))); console.log('OK  ', f); }
  catch (e) { console.log('FAIL', f, '-', (e as Error).message.slice(0, 300)); }
}
