/**
 * A crash the e2e tests ask for with VIGIL_TEST_CRASH=before-complete: the `vigil worker`
 * process kills itself (SIGKILL) as its first completion is about to be sent to the store,
 * after the handler returned. Only the process entry installs it; the library Worker
 * never reads the environment.
 */
import type { Store } from "../store/store.js";

/** `store`, or when the environment asks for the crash, a view of it that dies before completing. */
export function withTestCrash(store: Store, env: NodeJS.ProcessEnv = process.env): Store {
  if (env.VIGIL_TEST_CRASH !== "before-complete") return store;
  const die = (): Promise<never> => {
    process.kill(process.pid, "SIGKILL");
    return new Promise(() => {});
  };
  return new Proxy(store, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if ((prop === "completeMany" || prop === "completeAndClaim") && typeof value === "function") return () => die();
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
