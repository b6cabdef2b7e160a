/**
 * Clever's rate limit (providers.md §1.8): a number of requests per bearer token per fixed
 * window (1,200 a minute), windows aligned to the clock so they "reset each minute".
 * Real time by default, not the district's clock: clients compute their wait from
 * `X-RateLimit-Reset` against their own clock.
 */
export interface RateLimitOptions {
  /** Requests per window and token (default 1200). */
  readonly limit?: number
  /** Window length (default 60 s). */
  readonly windowMs?: number
  /** Time source (default Date.now). */
  readonly now?: () => number
}

export interface RateLimitState {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  /** Unix seconds at which the current window ends. */
  readonly reset: number
}

export class RateLimiter {
  readonly limit: number
  readonly windowMs: number
  private readonly now: () => number
  private readonly windows = new Map<string, { start: number; count: number }>()

  constructor(options: RateLimitOptions = {}) {
    this.limit = options.limit ?? 1200
    this.windowMs = options.windowMs ?? 60_000
    this.now = options.now ?? Date.now
  }

  /** Counts one request of `key` (the token) and says whether it is within the limit. */
  hit(key: string): RateLimitState {
    const start = Math.floor(this.now() / this.windowMs) * this.windowMs
    let window = this.windows.get(key)
    if (window === undefined || window.start !== start) {
      window = { start, count: 0 }
      this.windows.set(key, window)
    }
    const allowed = window.count < this.limit
    if (allowed) window.count++
    return { allowed, limit: this.limit, remaining: this.limit - window.count, reset: Math.ceil((start + this.windowMs) / 1000) }
  }

  /** Forgets all counts (a test starting over within the same minute). */
  reset(): void {
    this.windows.clear()
  }
}

/** The headers Clever sends with the state of the limit. */
export const rateLimitHeaders = (state: RateLimitState): Record<string, string> => ({
  "X-RateLimit-Limit": String(state.limit),
  "X-RateLimit-Remaining": String(state.remaining),
  "X-RateLimit-Reset": String(state.reset)
})
