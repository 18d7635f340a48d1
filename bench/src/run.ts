/**
 * Drives a workload through a gateway: chat sessions turn by turn (each turn carries the real replies so far, as a
 * chat client does), RAG requests in between, `concurrency` conversations at once. Records every request as the
 * client saw it; fault hooks fire at given fractions of the run without pausing the traffic.
 */
import { ChatClient, type ChatResult } from './client';
import type { ChatMessage, Workload } from './workload';

export interface RequestRecord {
  readonly kind: 'chat' | 'rag';
  readonly sessionId?: string;
  /** 0-based turn within the session. */
  readonly turn?: number;
  readonly document?: number;
  /** The stage it was sent in, when the run offers its load in stages (`RunOptions.stages`). */
  readonly stage?: number;
  /** What was sent (the oracle replays it). */
  readonly messages: readonly ChatMessage[];
  readonly headers: Readonly<Record<string, string>>;
  /** Milliseconds since the run started. */
  readonly startedMs: number;
  readonly endedMs: number;
  readonly result: ChatResult;
}

export interface FaultHook {
  /** Fire once this fraction of the requests has completed. */
  readonly atFraction: number;
  readonly name: string;
  readonly action: () => Promise<void>;
}

export interface RunOptions {
  readonly gatewayUrl: string;
  readonly model: string;
  /** Closed loop: this many conversations (or single requests) at once. Ignored when `arrivalsMs` is given. */
  readonly concurrency: number;
  /**
   * Open loop: single request i is sent `arrivalsMs[i]` ms after the start whatever is still in flight, as a load
   * generator with a request rate does (vLLM's benchmark_serving.py, llm-d's benchmarks). Only for workloads without
   * chat sessions, whose turns wait for each other by nature.
   */
  readonly arrivalsMs?: readonly number[];
  /**
   * Open loop in stages, as inference-perf runs a load's stages (inference_perf/loadgen/load_generator.py @ 3788ed5
   * `run_stage`, `mp_run`): request i belongs to stage `ofRequest[i]` and `arrivalsMs[i]` counts from its stage's
   * start; a stage starts once every request of the stage before has finished and `gapMs` more have passed.
   */
  readonly stages?: { readonly ofRequest: readonly number[]; readonly gapMs: number };
  readonly hooks?: readonly FaultHook[];
  /** Called after each request with (done, total). */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface RunOutcome {
  readonly records: RequestRecord[];
  readonly wallSeconds: number;
  /** Epoch ms the run started at; record times are relative to it. */
  readonly startedAtMs: number;
  /** When each hook fired, ms since the start. */
  readonly hookTimes: Record<string, number>;
}

type Task = { kind: 'chat'; index: number } | { kind: 'rag'; index: number };

/** Interleaves sessions and RAG requests evenly, so both kinds are in flight through the whole run. */
function schedule(workload: Workload): Task[] {
  const tasks: Task[] = [];
  const s = workload.sessions.length;
  const r = workload.rag.length;
  let i = 0;
  let j = 0;
  while (i < s || j < r) {
    if (i < s && (j >= r || i / s <= j / r)) tasks.push({ kind: 'chat', index: i++ });
    else tasks.push({ kind: 'rag', index: j++ });
  }
  return tasks;
}

export async function runWorkload(workload: Workload, options: RunOptions): Promise<RunOutcome> {
  const client = new ChatClient(options.gatewayUrl, options.model);
  const t0 = Date.now();
  const records: RequestRecord[] = [];
  const hookTimes: Record<string, number> = {};
  const pendingHooks = [...(options.hooks ?? [])].sort((a, b) => a.atFraction - b.atFraction);
  const hookRuns: Promise<void>[] = [];
  const total = workload.totalRequests;
  const maxTokens = workload.options.maxTokens;

  const record = (r: RequestRecord) => {
    records.push(r);
    options.onProgress?.(records.length, total);
    while (pendingHooks.length > 0 && records.length >= pendingHooks[0].atFraction * total) {
      const hook = pendingHooks.shift()!;
      hookTimes[hook.name] = Date.now() - t0;
      hookRuns.push(hook.action());
    }
  };

  const runChat = async (index: number) => {
    const plan = workload.sessions[index];
    const history: ChatMessage[] = [{ role: 'system', content: plan.system }];
    for (let turn = 0; turn < plan.userTurns.length; turn++) {
      history.push({ role: 'user', content: plan.userTurns[turn] });
      const startedMs = Date.now() - t0;
      const messages = [...history];
      const headers = { 'x-session-id': plan.sessionId };
      const result = await client.chat(messages, maxTokens, headers);
      record({ kind: 'chat', sessionId: plan.sessionId, turn, messages, headers, startedMs, endedMs: Date.now() - t0, result });
      // A failed turn is retried by nobody: the conversation goes on with an empty reply, as a user would retype.
      history.push({ role: 'assistant', content: result.reply });
    }
  };

  const runRag = async (index: number, stage?: number) => {
    const plan = workload.rag[index];
    const startedMs = Date.now() - t0;
    const headers = { ...(plan.headers ?? {}) };
    const result = await client.chat(plan.messages, maxTokens, headers);
    record({
      kind: 'rag', document: plan.document, ...(stage !== undefined ? { stage } : {}), messages: plan.messages, headers, startedMs,
      endedMs: Date.now() - t0, result,
    });
  };

  const arrivals = options.arrivalsMs;
  if (arrivals) {
    if (workload.sessions.length > 0) throw new Error('open-loop arrivals are for single requests; this workload has chat sessions');
    if (arrivals.length !== workload.rag.length) throw new Error(`${arrivals.length} arrival times for ${workload.rag.length} requests`);
    const stages = options.stages;
    if (stages && stages.ofRequest.length !== arrivals.length) throw new Error(`${stages.ofRequest.length} stages for ${arrivals.length} requests`);
    const byStage: number[][] = [];
    arrivals.forEach((_, i) => (byStage[stages?.ofRequest[i] ?? 0] ??= []).push(i));
    for (let stage = 0; stage < byStage.length; stage++) {
      if (stage > 0) await new Promise((resolve) => setTimeout(resolve, stages!.gapMs));
      const start = Date.now();
      await Promise.all((byStage[stage] ?? []).map(async (i) => {
        const wait = start + arrivals[i]! - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await runRag(i, stages ? stage : undefined);
      }));
    }
  } else {
    const queue = schedule(workload);
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, async () => {
      for (let task = queue.shift(); task; task = queue.shift()) {
        await (task.kind === 'chat' ? runChat(task.index) : runRag(task.index));
      }
    }));
  }
  await Promise.all(hookRuns);
  client.close();
  return { records, wallSeconds: (Date.now() - t0) / 1000, startedAtMs: t0, hookTimes };
}
