/**
 * The fake Clever API's fault control (../FakeClever/Faults.ts), reused as is, with the
 * Clever-specific kinds read the OneRoster way:
 *
 * - `status`: the status with an imsx_StatusInfo body (`message` as imsx_description);
 * - `rateLimit`: 429 with `Retry-After` (`retryAfterSeconds`, else `resetInSeconds`, else 1);
 * - `notJson`: a 200 HTML page (a login or maintenance page in front of the API);
 * - `delay`, `dropConnection`, `truncate`: as for Clever;
 * - `noLinks`: the page without its `Link` header (with `dropTotal: true` also without
 *   `X-Total-Count`), so a client has to page by counting;
 * - `endEarly`: the listing seems to end before `X-Total-Count` is reached — `mode`
 *   `"empty"` (default: no records, no `next` link, the true count), `"short"` (half the
 *   page, no `next`), or `"wrongCount"` (the real page, but `X-Total-Count` = `count`,
 *   default offset + page length, and links computed from it);
 * - `body`, `redirect`, `headers` (e.g. `X-Total-Count: 1000000000000`, `abc`, `-1`),
 *   `rewrite`, `hugeBody`, `endlessBody`, `drip`: as for Clever;
 * - `next` and `repeatPage` do nothing here (OneRoster clients page by offset);
 * - `ignoreOffset`: every page is the one at offset 0 (links and total as if it moved on);
 * - `neverEmpty`: past the end of the collection, pages are filled with records made up on
 *   the spot (copies of the last real one under new sourcedIds), without `X-Total-Count`
 *   or `Link`: a listing that never reaches an empty page.
 */
import { type Fault, FaultControl, type FaultHandle, type FaultRequest, type FaultRule } from "../FakeClever/Faults.ts"

export type EndEarlyMode = "empty" | "short" | "wrongCount"

export type OneRosterFault =
  | Exclude<Fault, { readonly kind: "endEarly" | "noLinks" }>
  | { readonly kind: "noLinks"; readonly dropTotal?: boolean }
  | { readonly kind: "endEarly"; readonly mode?: EndEarlyMode; readonly count?: number }
  | { readonly kind: "ignoreOffset" }
  | { readonly kind: "neverEmpty" }

export type OneRosterFaultRule = OneRosterFault & Omit<FaultRule, "kind">

/**
 * A {@link FaultControl} whose rules may carry the OneRoster options above. The base class
 * hands back the injected rule object itself, so the options travel with it.
 */
export class OneRosterFaultControl extends FaultControl {
  override inject(rule: OneRosterFaultRule): FaultHandle {
    return super.inject(rule as FaultRule)
  }

  /** {@link take}, typed with the OneRoster options. */
  takeOneRoster(request: FaultRequest): OneRosterFault | undefined {
    return this.take(request) as OneRosterFault | undefined
  }
}
