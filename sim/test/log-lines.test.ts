/**
 * The simulator's warnings are JSON lines on stderr with the time they were written (`ts`), as vLLM's carry theirs
 * (`_FORMAT` = "%(levelname)s %(asctime)s …", vllm/logger.py) and the EPP's do: the bench stack appends each process's
 * stderr to one file across restarts, where a line without a time cannot be placed beside the others.
 */
import { parseCli } from '../src/cli';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function stderrOf(run: () => void): Record<string, unknown>[] {
  const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    run();
    return write.mock.calls.map((c) => String(c[0])).join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  } finally {
    write.mockRestore();
  }
}

test('a start-up warning (max_num_batched_tokens over max_num_seqs × max_model_len) carries ts, level and msg', () => {
  const lines = stderrOf(() => parseCli(['--max-num-seqs', '1', '--max-model-len', '1024', '--kv-cache-blocks', '64']));
  expect(lines).toEqual([{ ts: expect.stringMatching(ISO), level: 'warn', msg: expect.stringContaining('max_num_batched_tokens (2048) exceeds') }]);
});

test('an unknown --kv-events-config field is warned about with ts, and the field', () => {
  const lines = stderrOf(() => parseCli(['--kv-events-config', '{"enable_kv_cache_event":true,"publisher":"zmq"}']));
  expect(lines).toEqual([{ ts: expect.stringMatching(ISO), level: 'warn', msg: 'unknown --kv-events-config field ignored, as vLLM 0.10 does', field: 'enable_kv_cache_event' }]);
});
