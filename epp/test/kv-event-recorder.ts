import type { KvEventBatch } from '@kvroute/protocol/kv-events';
import type { ResetReason, SubscriberEvents } from '../src/kvindex/event-subscriber';

/** Records what the subscriber reports, in order. */
export class Recorder implements SubscriberEvents {
  readonly log: string[] = [];
  batch(endpoint: string, b: KvEventBatch, model: string | undefined): void {
    const first = b.events[0];
    this.log.push(`batch ${endpoint} ${first?.type === 'BlockRemoved' ? first.blockHashes[0] : '?'}${model ? ` ${model}` : ''}`);
  }
  reset(endpoint: string, reason: ResetReason): void {
    this.log.push(`reset ${endpoint} ${reason}`);
  }
  dropped(endpoint: string | undefined, reason: string): void {
    this.log.push(`dropped ${endpoint ?? '-'} ${reason}`);
  }
  gap(endpoint: string): void {
    this.log.push(`gap ${endpoint}`);
  }
  replay(endpoint: string, outcome: string): void {
    this.log.push(`replay ${endpoint} ${outcome}`);
  }
  batches(): string[] {
    return this.log.filter((l) => l.startsWith('batch'));
  }
}
