/**
 * The store contract: what every `Store` adapter guarantees, run unchanged against each
 * engine. `open` makes a fresh, migrated, empty store (the suite passes a ManualClock in
 * `opts.clock` where time must move); the suite closes the store, then calls `cleanup`.
 * The guarantees themselves are listed in docs/store.md, "Store semantics".
 */
import { afterEach, beforeEach, describe } from "vitest";
import { ContractContext, type OpenStore } from "./contract-context.js";
import { countersAndRetention } from "./contract-counters.js";
import { optionalCycleVerbs } from "./contract-cycle.js";
import { flowControl } from "./contract-flow.js";
import { enqueueAndClaim } from "./contract-jobs.js";
import { leasesAndLifecycle } from "./contract-lifecycle.js";
import { upkeepAndSideTables } from "./contract-upkeep.js";
import { runsAndQueuePosition } from "./contract-runs.js";

export type { OpenStore } from "./contract-context.js";

export function defineStoreContract(name: string, open: OpenStore): void {
  describe(`store contract: ${name}`, () => {
    const t = new ContractContext(open);
    beforeEach(() => t.reset());
    afterEach(() => t.closeAll());
    enqueueAndClaim(t);
    leasesAndLifecycle(t);
    upkeepAndSideTables(t);
    optionalCycleVerbs(t);
    flowControl(t);
    runsAndQueuePosition(t);
    countersAndRetention(t);
  });
}
