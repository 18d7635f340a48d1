import * as os from 'os';
import * as path from 'path';
import { defaultHubCache } from '../src';

/**
 * The Hugging Face hub cache the EPP finds a model's tokenizer in, resolved from the environment as huggingface_hub
 * resolves the cache vLLM downloads into (src/huggingface_hub/constants.py @ 03333b6): HF_HUB_CACHE, else the legacy
 * HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, where HF_HOME defaults to $XDG_CACHE_HOME/huggingface, else
 * ~/.cache/huggingface.
 */
describe('defaultHubCache follows huggingface_hub constants.py', () => {
  test.each([
    [{ HF_HUB_CACHE: '/a', HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/c', XDG_CACHE_HOME: '/d' }, '/a'],
    [{ HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/c', XDG_CACHE_HOME: '/d' }, '/b'],
    [{ HF_HOME: '/c', XDG_CACHE_HOME: '/d' }, '/c/hub'],
    [{ XDG_CACHE_HOME: '/d' }, '/d/huggingface/hub'],
    [{}, path.join(os.homedir(), '.cache', 'huggingface', 'hub')],
  ])('%j → %s', (env, expected) => {
    expect(defaultHubCache(env)).toBe(expected);
  });
});
