export * from './protos';
export * from './ext-proc-messages';
export * from './ext-proc-read';
