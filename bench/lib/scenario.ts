/** What every scenario is given. */
export interface ScenarioOptions {
  quick: boolean;
  log: (line: string) => void;
  /**
   * Resolves once the background setup of later scenarios is done (see `Scenario.prepare` in
   * bench/run.ts): call it before timing anything CPU-bound.
   */
  quiet: () => Promise<void>;
}
