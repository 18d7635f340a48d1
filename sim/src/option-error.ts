/** A bad flag or option; the message starts with the flag's name. */
export class OptionError extends Error {
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(`${flag}: ${message}`);
    this.name = 'OptionError';
  }
}
