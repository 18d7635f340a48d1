export * from './errors';
export * from './request';
export * from './json-body';
export * from './chat-template-context';
export * from './python-json';
export * from './conversation';
export * from './content-format';
export * from './jinja-python-strings';
