import { ConfigError } from '../../config/errors';
import { describeValue } from '../../config/errors';
import { FieldReader } from '../../config/fields';
import { definePlugin, parameters } from '../plugin';

export interface TokenProducerParameters {
  /** The model whose tokenizer tokenizes prompts (upstream: required for its `vllm` backend). */
  modelName?: string;
  /** Upstream's vLLM render backend: `url`, `timeout`, `mmTimeout`. Checked and kept; kvroute tokenizes in process. */
  vllm?: { url?: string; timeout?: string; mmTimeout?: string };
  /** Upstream's deprecated gRPC-over-UDS tokenizer sidecar settings. Kept; kvroute tokenizes in process. */
  udsTokenizerConfig?: Record<string, unknown>;
  /** Upstream's tokenizer-free estimate backend's multimodal tuning. Kept; not used. */
  estimate?: Record<string, unknown>;
}

/** A plugin that only carries its parameters: the precise scorer tokenizes (`precise-prefix-cache-scorer.ts`). */
class TokenProducer {
  readonly type = 'token-producer';
  constructor(readonly name: string, readonly parameters: Required<TokenProducerParameters>) {}
}

/**
 * `token-producer` (llm-d-router v0.10.0 `pkg/epp/framework/plugins/requestcontrol/dataproducer/tokenizer`, the name
 * `tokenizer` took in v0.9.0): tokenizes each prompt for the plugins that read token ids, upstream by calling vLLM's
 * `/v1/completions/render` and `/v1/chat/completions/render` (`vllm.url`) or by estimate. kvroute's
 * `precise-prefix-cache-scorer` tokenizes in process with the model's own Hugging Face tokenizer, so this plugin does no
 * work of its own: its `modelName` is the tokenizer the precise scorer loads when the scorer names none
 * (`producer-form.ts`), and its `vllm` block is checked and kept. Not listed in profiles, as upstream's data producers
 * are not.
 */
export const tokenProducer = definePlugin({
  type: 'token-producer',
  kinds: [],
  parameters: parameters<TokenProducerParameters>((fields) => {
    const map = (key: string): Record<string, unknown> => {
      const raw = fields.raw(key);
      if (raw == null) return {};
      if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(fields.fieldPath(key), `must be a map, got ${describeValue(raw)}`);
      return raw as Record<string, unknown>;
    };
    const vllmRaw = fields.raw('vllm');
    let vllm: NonNullable<TokenProducerParameters['vllm']> = {};
    if (vllmRaw != null) {
      const v = FieldReader.ofMap(vllmRaw, fields.fieldPath('vllm'));
      const url = v.optionalString('url');
      if (url !== undefined && !/^http:\/\/[^/\s]+$/.test(url)) {
        throw new ConfigError(v.fieldPath('url'), `must be an http:// base URL without a trailing slash or path (upstream's render client speaks plain HTTP), got ${JSON.stringify(url)}`);
      }
      const timeout = v.raw('timeout') == null ? undefined : v.duration('timeout', '5s');
      const mmTimeout = v.raw('mmTimeout') == null ? undefined : v.duration('mmTimeout', '30s');
      v.finish();
      vllm = { ...(url !== undefined ? { url } : {}), ...(timeout !== undefined ? { timeout } : {}), ...(mmTimeout !== undefined ? { mmTimeout } : {}) };
    }
    // "" is "none" (upstream's Go zero value, and what the resolved parameters carry when it is absent, which the
    // scheduler reads again); the model is needed only by upstream's vllm backend.
    const modelName = fields.raw('modelName') === '' ? '' : fields.optionalString('modelName') ?? '';
    return { modelName, vllm, udsTokenizerConfig: map('udsTokenizerConfig'), estimate: map('estimate') };
  }),
  create: (name, p) => new TokenProducer(name, p),
});
