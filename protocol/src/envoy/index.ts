export * from './protos';
export * from './ext-proc-messages';
