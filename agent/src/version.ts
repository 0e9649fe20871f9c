// Replaced by the bundler with package.json's version; tests see the fallback.
declare const KAPSEL_VERSION: string | undefined;
export const AGENT_VERSION: string =
  typeof KAPSEL_VERSION === 'string' ? KAPSEL_VERSION : '0.0.0-dev';
