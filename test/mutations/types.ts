/**
 * A deliberate break of one behaviour (a mutation) and the tests that must catch it.
 * test/mutations/run.ts applies each one in a scratch copy of the repository, runs its
 * tests there and checks that at least one fails; the list is the record asked for in
 * issue 12 and is repeated after engine v2 rewrites the code underneath.
 */
export interface Mutation {
  /** The behaviour broken, as a reviewer would name it ("qwen2 v bias dropped"). */
  readonly name: string;
  /** Repository-relative file the break is applied to. */
  readonly file: string;
  /** Exact text to replace; must occur exactly once in the file. */
  readonly find: string;
  /** Replacement text (the break). */
  readonly replace: string;
  /** Test files (repository-relative) of which at least one must fail with the break in place. */
  readonly tests: readonly string[];
  /** Optional `bun test -t` filter to run only the catching tests of those files. */
  readonly filter?: string;
}
