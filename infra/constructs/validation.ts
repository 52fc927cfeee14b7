/**
 * Props validation shared by the constructs: collect every problem first, then throw once, so an
 * operator fixing a deployment sees all conflicts in one synth instead of one per attempt.
 */
export class InvalidPropsError extends Error {
  readonly problems: readonly string[];

  constructor(owner: string, problems: readonly string[]) {
    super(`${owner}: invalid props:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.name = "InvalidPropsError";
    this.problems = problems;
  }
}

/** Collects problems; `throwIfAny` raises a single InvalidPropsError listing all of them. */
export class ProblemList {
  private readonly problems: string[] = [];

  require(condition: boolean, problem: string): void {
    if (!condition) this.problems.push(problem);
  }

  add(problems: readonly string[]): void {
    this.problems.push(...problems);
  }

  get all(): readonly string[] {
    return this.problems;
  }

  throwIfAny(owner: string): void {
    if (this.problems.length > 0) throw new InvalidPropsError(owner, this.problems);
  }
}

export function isWholeNumberIn(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}
