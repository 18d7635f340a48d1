import { ApiError } from './openai';
import type { SimulatorOptions } from './options';

/** A LoRA adapter being served: vLLM's LoRARequest as OpenAIServingModels keeps it. */
export interface LoraAdapter {
  name: string;
  /** `lora_int_id`: OpenAIServingModels' counter, 1 for the first adapter ever loaded. */
  intId: number;
  /** `lora_path`: the card's `root`. */
  path: string;
  /** `base_model_name`, kept only when it is a served name: the card's `parent` (else the first served name). */
  baseModelName: string | null;
}

/**
 * The names a request's `model` may take: the served names and the LoRA adapters, loaded from `--lora-modules` at
 * start-up and, with VLLM_ALLOW_RUNTIME_LORA_UPDATING, through /v1/load_lora_adapter and /v1/unload_lora_adapter
 * (OpenAIServingModels, vllm/entrypoints/openai/serving_models.py @ v0.10.0).
 */
export class ServedModels {
  private readonly adapters = new Map<string, LoraAdapter>();
  /** `lora_id_counter`: never reused, so an adapter loaded again gets a new id. */
  private loraIdCounter = 0;

  constructor(private readonly o: SimulatorOptions) {
    // init_static_loras: each --lora-modules item through load_lora_adapter, in order.
    for (const name of o.loraModules) this.add(name, o.loraModulePaths[name] ?? name, o.loraModuleBaseModels[name]);
  }

  /**
   * The model a request names: absent or "" means the first served name, a served name or loaded LoRA adapter is used
   * as sent, anything else is a 404 (serving_engine.py `_check_model`, `_is_model_supported`, `_get_model_name` @
   * v0.10.0). With VLLM_ALLOW_RUNTIME_LORA_UPDATING an unknown name first goes through `resolve_lora`, which takes an id
   * from `lora_id_counter` before trying its resolvers (none are registered here): the 404 spends an id, so the next
   * adapter loaded gets the one after (serving_models.py `resolve_lora` @ v0.10.0); the id is BlockStored's `lora_id`.
   */
  resolve(model: string | undefined): string {
    if (!model) return this.o.servedModelNames[0];
    if (this.o.servedModelNames.includes(model) || this.adapters.has(model)) return model;
    if (this.o.allowRuntimeLoraUpdating) ++this.loraIdCounter;
    throw new ApiError(404, `The model \`${model}\` does not exist.`, 'NotFoundError');
  }

  /** The adapter a request's resolved model names, or undefined for a served base name. */
  adapter(model: string): LoraAdapter | undefined {
    return this.adapters.get(model);
  }

  /** The adapters in load order, as show_available_models lists them. */
  loraAdapters(): LoraAdapter[] {
    return [...this.adapters.values()];
  }

  /**
   * `load_lora_adapter` (serving_models.py @ v0.10.0): `_check_load_lora_adapter_request` first (an empty name or path,
   * then a name already loaded: 400 InvalidUserInput), then the engine's add_lora, which fails without --enable-lora
   * (the worker has no LoRA manager), a 400 BadRequestError. The simulator loads no weights, so any path loads.
   */
  load(name: string, path: string): string {
    if (!name || !path) throw new ApiError(400, "Both 'lora_name' and 'lora_path' must be provided.", 'InvalidUserInput');
    if (this.adapters.has(name)) throw new ApiError(400, `The lora adapter '${name}' has already been loaded.`, 'InvalidUserInput');
    if (!this.o.enableLora) throw new ApiError(400, 'LoRA is not enabled.', 'BadRequestError');
    this.add(name, path);
    return `Success: LoRA adapter '${name}' added successfully.`;
  }

  /**
   * `unload_lora_adapter` (serving_models.py @ v0.10.0): the name is required (`lora_int_id` is accepted and not read),
   * and must be loaded, else 404 NotFoundError. Requests already running on it finish.
   */
  unload(name: string): string {
    if (!name) throw new ApiError(400, "'lora_name' needs to be provided to unload a LoRA adapter.", 'InvalidUserInput');
    if (!this.adapters.has(name)) throw new ApiError(404, `The lora adapter '${name}' cannot be found.`, 'NotFoundError');
    this.adapters.delete(name);
    return `Success: LoRA adapter '${name}' removed successfully.`;
  }

  private add(name: string, path: string, baseModelName?: string): void {
    const base = baseModelName !== undefined && this.o.servedModelNames.includes(baseModelName) ? baseModelName : null;
    this.adapters.set(name, { name, intId: ++this.loraIdCounter, path, baseModelName: base });
  }
}
