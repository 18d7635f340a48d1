export * from './codec';
export * from './frames';
