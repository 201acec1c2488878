/** The API-reference topic of a source file under packages/<name>/src, or undefined outside them. */
export function topicOf(fileName: string): string | undefined
/** The TypeDoc plugin entry. */
export function load(app: import('typedoc').Application): void
