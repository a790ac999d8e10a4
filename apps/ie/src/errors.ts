/**
 * One table maps every error code the CLI can meet to an exit code. User errors print one
 * line (`ie: <message>` plus the code) and never a stack trace.
 */
import { FormatError } from '@ie/format';
import { KernelError } from '@ie/kernels';
import { ManifestError, QuantError } from '@ie/quant';
import { IeRuntimeError, StructuredOutputError } from '@ie/runtime';

export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  BAD_INPUT: 3,
  INVALID_MODEL: 4,
  /** ie quantize: the quantized model missed a gate threshold. */
  GATE_FAILED: 5,
  INTERRUPTED: 130,
  /** SIGTERM: as the shell reports a process it ended (128 + 15). */
  TERMINATED: 143,
} as const;
export type ExitName = keyof typeof EXIT;

/** What each exit code means, as `ie <command> --help` lists them. */
export const EXIT_MEANING: Record<ExitName, string> = {
  OK: 'success',
  FAILURE: 'an unexpected failure (a bug, or an I/O error such as a full disk)',
  USAGE: 'a flag or argument is missing, unknown or malformed',
  BAD_INPUT: 'an input file is missing, unreadable or malformed',
  INVALID_MODEL: 'the model fails validation (a checksum, a NaN weight, a manifest mismatch)',
  GATE_FAILED: 'the quantized model missed its calibration gate (nothing written unless forced)',
  INTERRUPTED: 'interrupted by Ctrl-C (SIGINT); a writer removes its partial files first',
  TERMINATED: 'terminated by SIGTERM; a writer removes its partial files first',
};

export const CLI_ERROR_CODES = {
  CLI_USAGE: 'a flag or argument is missing, unknown or malformed',
  CLI_UNKNOWN_COMMAND: 'no such command',
  CLI_NOT_AVAILABLE: 'the feature is not available in this version',
  CLI_VALIDATION_FAILED: 'the model has problems',
} as const;
export type CliErrorCode = keyof typeof CLI_ERROR_CODES;

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    readonly code: CliErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Exit code for an error, by class and code. */
export function exitCodeFor(e: unknown): number {
  if (e instanceof CliError) {
    return {
      CLI_USAGE: EXIT.USAGE,
      CLI_UNKNOWN_COMMAND: EXIT.USAGE,
      CLI_NOT_AVAILABLE: EXIT.USAGE,
      CLI_VALIDATION_FAILED: EXIT.INVALID_MODEL,
    }[e.code];
  }
  if (e instanceof FormatError) return e.code === 'IEBIN_WRITE_FAILED' ? EXIT.FAILURE : EXIT.BAD_INPUT;
  if (e instanceof QuantError) return EXIT.BAD_INPUT;
  // A JSON schema or grammar ie cannot compile is a malformed input file.
  if (e instanceof StructuredOutputError) return EXIT.BAD_INPUT;
  if (e instanceof IeRuntimeError) {
    // IE_TOKENIZER_INVALID (a corrupt or malformed tokenizer) is bad input like any other broken file.
    const special: Partial<Record<IeRuntimeError['code'], number>> = {
      IE_ABORTED: EXIT.INTERRUPTED,
      IE_INVALID_OPTION: EXIT.USAGE,
      IE_MODEL_CORRUPT: EXIT.INVALID_MODEL,
      IE_TOKENIZER_INVALID: EXIT.BAD_INPUT,
    };
    return special[e.code] ?? EXIT.BAD_INPUT;
  }
  if (e instanceof KernelError) return e.code === 'KERNELS_BAD_OPTION' ? EXIT.USAGE : EXIT.FAILURE;
  return EXIT.FAILURE;
}

/**
 * What to do next, by error code, in the CLI's words: the libraries state the fact and the field;
 * the commands and flags that fix it are the CLI's to name.
 */
const HINTS: Partial<Record<string, string>> = {
  IEBIN_NOT_FOUND: 'make one with `ie convert` or `ie synth`',
  QUANT_MANIFEST_MISMATCH: 'run `ie quantize` on this model',
  QUANT_NEEDS_CALIBRATION: 'run `ie quantize MODEL --policy FILE --out MANIFEST` and export with the expanded MANIFEST',
  QUANT_MANIFEST_REJECTED: 'pass --force to export it anyway, or relax the policy and run `ie quantize` again',
};

function withHint(message: string, code: string): string {
  const hint = HINTS[code];
  return hint ? `${message}; ${hint}` : message;
}

/** The one line printed for an error. Unexpected errors (bugs) keep their stack. */
export function describeError(e: unknown): string {
  // A manifest's problems are listed one per line under the summary.
  if (e instanceof ManifestError)
    return `ie: ${withHint(e.summary, e.code)} [${e.code}]${e.problems.map((p) => `\n  ${p.field}: ${p.message}`).join('')}`;
  if (
    e instanceof CliError ||
    e instanceof FormatError ||
    e instanceof QuantError ||
    e instanceof IeRuntimeError ||
    e instanceof StructuredOutputError ||
    e instanceof KernelError
  )
    return `ie: ${withHint(e.message, e.code)} [${e.code}]`;
  if (e instanceof Error && 'code' in e && typeof (e as NodeJS.ErrnoException).code === 'string' && (e as NodeJS.ErrnoException).syscall) {
    return `ie: ${e.message} [IO_ERROR]`;
  }
  return `ie: internal error, please report it: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
}
